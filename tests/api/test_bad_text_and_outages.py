"""Input no database can store, and a database that is down: a clear 4xx or 503, never a
500, and nothing stored or leaked."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from core.version import API_VERSION, __version__
from tests import servers
from tests.api.conftest import Api
from tests.api.live import free_port

VERSIONS = {"version": __version__, "api_version": API_VERSION}  # clients read them

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "runs/?external_id=%00",
        "runs/?status=%00",
        "checkpoints/?run=a%00b",
        "queue/?limit=1%00",
        "runs/?x%00=1",
    ],
)
def test_nul_in_a_query_parameter_is_a_400_naming_it(api, path):
    response = api.get(path)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/admin/approvals/checkpoint/?q=%00", "/admin/approvals/checkpoint/?agent__slug=a%00",
     "/admin/%00/"],
)  # fmt: skip
def test_nul_in_a_page_query_is_a_plain_400_not_a_database_error(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.slow
def test_with_the_database_down_the_api_answers_503_and_health_leaks_nothing(tmp_path):
    port = free_port()
    missing = tmp_path / "no-such-dir" / "portal.sqlite3"
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{missing}",
        "HITL_VAR_DIR": str(tmp_path),
        "LOG_LEVEL": "CRITICAL",
    }
    proc = servers.start_uvicorn(port, env)
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/health/", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "portal did not answer"
                time.sleep(0.1)
        assert health.status_code == 503
        assert health.json() == {"status": "error", "detail": "database unavailable", **VERSIONS}
        assert str(missing.parent) not in health.text and "sqlite" not in health.text.lower()
        runs = httpx.get(f"{url}/runs/", headers={"Authorization": "Bearer hitl_ax_y"}, timeout=5)
        assert runs.status_code == 503, runs.text[:500]
        assert runs.json()["code"] == "database_unavailable"
        assert int(runs.headers["Retry-After"]) > 0
        posted = httpx.post(
            f"{url}/checkpoints/",
            content=json.dumps({"run": "x"}),
            headers={"Authorization": "Bearer hitl_ax_y", "Content-Type": "application/json"},
            timeout=5,
        )
        assert posted.status_code == 503
        # the long-poll (served by the ASGI app itself) says the same
        waited = httpx.get(
            f"{url}/checkpoints/0b6b3f0e-0000-4000-8000-000000000000/wait?timeout=1",
            headers={"Authorization": "Bearer hitl_ax_y"},
            timeout=5,
        )
        assert waited.status_code == 503, waited.text[:500]
        assert waited.json()["code"] == "database_unavailable"
        assert int(waited.headers["Retry-After"]) > 0
    finally:
        servers.stop(proc)


def test_an_agent_key_cannot_read_a_persons_queue(api):
    assert Api(api.token).get("queue/").status_code == 403
