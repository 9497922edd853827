"""The compatibility rule (docs/client.md, "Versions"): the portal states its release and API
version at GET /api/v1/health/; the client reads them on first contact and refuses, naming
both, a server whose API it cannot speak — before any request that could change something."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import hitl_client._version as client_version
from core.version import API_VERSION, __version__
from hitl_client import HitlClient, IncompatibleServer
from hitl_client._version import compatibility_problem
from tests.api.live import free_port
from tests.code import pythonpath


@pytest.mark.parametrize(
    ("needs", "server_api", "ok"),
    [
        ("1.0", "1.0", True),
        ("1.0", "1.4", True),  # a newer minor only adds
        ("1.2", "1.1", False),  # the client may use what 1.2 added
        ("1.0", "2.0", False),  # another major removes or changes
        ("2.0", "1.9", False),
        ("1.0", None, False),  # a server that does not say
        ("1.0", "one", False),
    ],
)
def test_it_applies_the_rule(monkeypatch, needs, server_api, ok):
    monkeypatch.setattr(client_version, "API_VERSION", needs)
    problem = compatibility_problem("7.7.7", server_api)
    assert (problem == "") is ok
    if not ok:
        assert f"hitl-client {client_version.__version__} (API {needs})" in problem
    if not ok and server_api:
        assert f"hitl-portal 7.7.7 (API {server_api})" in problem


class FakePortal:
    """A server on 127.0.0.1 whose health/ answers `health` (None: 404), recording every
    request's method and path; any other request gets 500 (it must never be reached)."""

    def __init__(self, health: dict | None):
        self.seen: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                fake.seen.append((self.command, self.path))
                found = self.path == "/api/v1/health/" and health is not None
                body = json.dumps(health if found else {"detail": "no"}).encode()
                self.send_response(200 if found else 404 if self.command == "GET" else 500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def newer_major():
    fake = FakePortal({"status": "ok", "version": "2.0.0", "api_version": "2.0"})
    yield fake
    fake.close()


def test_it_refuses_another_major_before_acting(newer_major):
    client = HitlClient(newer_major.url, "hitl_a_key", retries=0)
    with pytest.raises(IncompatibleServer) as raised:
        client.request_approval("Delete", tool="rm", args={})
    message = str(raised.value)
    assert f"hitl-client {client_version.__version__} (API {client_version.API_VERSION})" in message
    assert "hitl-portal 2.0.0 (API 2.0)" in message
    assert raised.value.server_version == "2.0.0" and raised.value.api_version == "2.0"
    assert newer_major.seen == [("GET", "/api/v1/health/")]  # nothing was posted

    with pytest.raises(IncompatibleServer, match=r"hitl-portal 2\.0\.0 \(API 2\.0\)"):
        asyncio.run(HitlClient(newer_major.url, "hitl_a_key", retries=0).astart_run("t"))
    assert all(method == "GET" for method, _ in newer_major.seen)


def test_it_refuses_an_older_minor_and_says_what_to_install(monkeypatch):
    monkeypatch.setattr(client_version, "API_VERSION", "1.3")
    fake = FakePortal({"status": "ok", "version": "0.9.0", "api_version": "1.1"})
    try:
        with pytest.raises(IncompatibleServer) as raised:
            HitlClient(fake.url, "hitl_a_key", retries=0).start_run("t")
    finally:
        fake.close()
    assert "needs API 1.3" in str(raised.value) and "(API 1.1)" in str(raised.value)
    assert "pip install 'hitl-client==0.9.0'" in str(raised.value)


def test_it_refuses_a_server_that_does_not_state_its_version():
    fake = FakePortal(None)
    try:
        with pytest.raises(IncompatibleServer, match="does not state its API version"):
            HitlClient(fake.url, "hitl_a_key", retries=0).start_run("t")
    finally:
        fake.close()
    assert fake.seen == [("GET", "/api/v1/health/")]


@pytest.mark.slow
def test_the_hitl_command_names_both_versions(newer_major):
    hitl = Path(sys.executable).with_name("hitl")
    proc = subprocess.run(
        [str(hitl), "request", "--title", "t", "--tool", "x"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={"HITL_URL": newer_major.url, "HITL_API_KEY": "k", "PYTHONPATH": pythonpath()},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    error = json.loads(proc.stderr)["error"]
    assert f"hitl-client {client_version.__version__}" in error and "(API 2.0)" in error


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_live_portal_states_its_versions_and_the_client_accepts_them(live_portal, agent_key):
    import httpx

    health = httpx.get(f"{live_portal.url}/api/v1/health/").json()
    assert health == {"status": "ok", "version": __version__, "api_version": API_VERSION}
    with HitlClient(live_portal.url, agent_key) as client:
        assert client.start_run("versions").status == "running"
        assert client._server_checked
