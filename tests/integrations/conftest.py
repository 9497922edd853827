import pytest

from tests.api.conftest import (  # noqa: F401  (fixtures shared with the API tests)
    agent_key,
    live_portal,
    reviewer_api,
)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory):
    """Both wheels, built once per session (tests/installed.py)."""
    from tests.installed import build_wheels

    return build_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def installed_client(wheels, tmp_path_factory):
    """A fresh venv: openai-agents first, then the client's wheel with [openai-agents]. Built
    once per session (about a minute with pip's cache)."""
    from tests.installed import client_beside_openai_agents

    return client_beside_openai_agents(tmp_path_factory.mktemp("installed") / "venv", wheels)
