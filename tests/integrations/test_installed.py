"""The client as installed: its wheel, in a fresh venv where the OpenAI Agents SDK (import name
`agents`, like the portal's Django app) was installed first. The SDK stays intact, no Django
comes along, and the OpenAI Agents scenario and the `hitl` command work from that venv against
a live portal — not from this checkout."""

from __future__ import annotations

import json
import zipfile

import pytest

from approvals.models import Checkpoint
from core.version import __version__
from tests.integrations.test_openai_agents import app_runner, edits_and_rejections

pytestmark = [pytest.mark.slow]


def names(wheel) -> list[str]:
    return zipfile.ZipFile(wheel).namelist()


def requires(wheel) -> list[str]:
    (metadata,) = [n for n in names(wheel) if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    lines = text.splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]


def test_the_client_wheel_holds_only_hitl_client_and_needs_only_httpx(wheels):
    assert wheels.client.name == f"hitl_client-{__version__}-py3-none-any.whl"
    tops = {name.split("/")[0] for name in names(wheels.client)}
    assert tops == {"hitl_client", f"hitl_client-{__version__}.dist-info"}  # no `agents`
    required = [r for r in requires(wheels.client) if "extra ==" not in r]
    assert len(required) == 1 and required[0].startswith("httpx"), required
    entry_points = zipfile.ZipFile(wheels.client).read(
        f"hitl_client-{__version__}.dist-info/entry_points.txt"
    )
    assert b"hitl = hitl_client.cli:main" in entry_points


def test_the_portal_wheel_needs_the_client_of_its_release(wheels):
    assert wheels.portal.name == f"hitl_portal-{__version__}-py3-none-any.whl"
    assert not any(name.startswith("hitl_client/") for name in names(wheels.portal))
    assert f"hitl-client=={__version__}" in requires(wheels.portal)


def test_it_installs_beside_openai_agents_and_pulls_no_django(installed_client, tmp_path):
    sdk = installed_client.run(
        "python", "-c", "from agents import Agent, Runner; import agents, hitl_client; "
        "print(agents.__file__); print(hitl_client.__version__)", cwd=tmp_path,
    )  # fmt: skip
    assert sdk.returncode == 0, sdk.stderr
    agents_file, version = sdk.stdout.split()
    assert "site-packages/agents/__init__.py" in agents_file and version == __version__
    # The SDK's files are the SDK's: pip records no other owner, and ours never shipped.
    owner = installed_client.run("pip", "show", "-f", "openai-agents", cwd=tmp_path)
    assert "agents/__init__.py" in owner.stdout
    assert installed_client.run("pip", "show", "django", cwd=tmp_path).returncode != 0
    assert installed_client.run("pip", "show", "hitl-portal", cwd=tmp_path).returncode != 0
    listed = installed_client.run("pip", "list", "--format=json", cwd=tmp_path)
    packages = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not packages & {"django", "djangorestframework", "django-q2", "psycopg", "granian"}


@pytest.mark.django_db(transaction=True)
def test_the_openai_agents_scenario_runs_from_the_install(
    installed_client, live_portal, agent_key, reviewer, tmp_path
):
    app = app_runner(installed_client.bin("python"), "", live_portal, agent_key, tmp_path)
    edits_and_rejections(app, live_portal, reviewer)


@pytest.mark.django_db(transaction=True)
def test_the_installed_hitl_command_talks_to_a_live_portal(
    installed_client, live_portal, agent_key, tmp_path
):
    assert installed_client.run("hitl", "--help", cwd=tmp_path).returncode == 0
    env = {"HITL_URL": live_portal.url, "HITL_API_KEY": agent_key}
    asked = installed_client.run("hitl", "request", "--title", "From the wheel", "--tool", "x",
                                 cwd=tmp_path, **env)  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    cp = json.loads(asked.stdout)
    assert Checkpoint.objects.get(pk=cp["id"]).title == "From the wheel"
    status = installed_client.run("hitl", "status", cp["id"], cwd=tmp_path, **env)
    assert status.returncode == 6 and json.loads(status.stdout)["status"] == "pending"
