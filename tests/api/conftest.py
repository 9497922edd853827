from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from agents.services import AGENT_KEYS
from approvals.services import user_token_create
from audit.events import Actor
from tests.factories import AgentFactory


class Api:
    """A DRF test client with a bearer token and JSON helpers."""

    def __init__(self, token: str | None = None):
        self.client = APIClient()
        self.token = token
        if token:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def get(self, path, **params):
        return self.client.get(_url(path), params)

    def post(
        self,
        path,
        body=None,
        *,
        key: str | None = None,
        raw: bytes | None = None,
        content_type="application/json",
        **extra,
    ):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.generic(
            "POST", _url(path), data, content_type=content_type, **headers, **extra
        )


def _url(path: str) -> str:
    return path if path.startswith("/") else f"/api/v1/{path}"


@pytest.fixture
def agent_key(agent) -> str:
    return AGENT_KEYS.create(agent, Actor.system("test"))


@pytest.fixture
def api(agent_key) -> Api:
    return Api(agent_key)


@pytest.fixture
def other_agent(db):
    return AgentFactory(slug="other", name="Other")


@pytest.fixture
def other_api(other_agent) -> Api:
    return Api(AGENT_KEYS.create(other_agent, Actor.system("test")))


@pytest.fixture
def reviewer_api(reviewer) -> Api:
    return Api(user_token_create(reviewer, name="test", scope="decide"))


@pytest.fixture
def anon() -> Api:
    return Api()


@pytest.fixture
def run_id(api) -> str:
    response = api.post("runs/", {"task": "clean up"})
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def ask(api, run_id):
    """POST a checkpoint as the agent; returns the response JSON."""

    def ask(**fields):
        body = {
            "run": run_id,
            "title": "Delete old logs",
            "action": {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}},
            **fields,
        }
        response = api.post("checkpoints/", body)
        assert response.status_code == 201, response.content
        return response.json()

    return ask


@pytest.fixture(scope="session")
def live_portal(django_db_setup, django_db_blocker):
    """uvicorn serving the portal (ASGI, with the long-poll fast path) on the test database.
    Tests using it need `transactional_db` so their rows are committed and visible."""
    from tests.api.live import LivePortal

    portal = LivePortal().start()
    yield portal
    portal.stop()
    with django_db_blocker.unblock():
        portal.wait_for_sessions_to_close()
