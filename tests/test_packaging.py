"""The two distributions agree: one release version (the portal's core/version.py, the
client's hitl_client/_version.py, and the portal's pin on the client), one API version, and
the client's extras admit the framework versions the integration tests pin. Built and
installed: tests/integrations/test_installed.py."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement

import core.version
import hitl_client
import hitl_client._version
from tests.code import CLIENT, ROOT

PORTAL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CLIENT_PROJECT = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]


def test_it_has_one_version_for_both_distributions():
    assert core.version.__version__ == hitl_client.__version__
    assert core.version.API_VERSION == hitl_client._version.API_VERSION
    pins = [Requirement(r) for r in PORTAL["dependencies"] if r.startswith("hitl-client")]
    assert [str(p.specifier) for p in pins] == [f"=={hitl_client.__version__}"]
    assert "version" in PORTAL["dynamic"] and "version" in CLIENT_PROJECT["dynamic"]


def test_the_client_needs_only_httpx_and_its_extras_admit_the_tested_frameworks():
    assert [Requirement(r).name for r in CLIENT_PROJECT["dependencies"]] == ["httpx"]
    extras = CLIENT_PROJECT["optional-dependencies"]
    assert {"langgraph", "openai-agents", "pydantic-ai", "mcp"} <= set(extras)
    tested = {
        Requirement(r).name: Requirement(r).specifier
        for r in PORTAL["optional-dependencies"]["integrations-test"]
    }
    for extra in ("langgraph", "openai-agents", "pydantic-ai", "mcp"):
        for req in map(Requirement, extras[extra]):
            (pinned,) = [str(s.version) for s in tested[req.name]]
            assert req.specifier.contains(pinned), (extra, str(req), pinned)
