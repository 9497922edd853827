"""The front door's contract, through the public port of a live `runportal` and of the
production topology (nginx): no state shared between clients, headers passed as bytes,
limits answered with a status (never a reset or a 5xx), streaming both ways, HEAD, the
long-poll and /mcp routes, per-client login limits and, behind nginx, an upstream outage as a
problem."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from urllib.parse import urlparse

import httpx
import pytest
from django.conf import settings

from approvals.models import Checkpoint, Decision
from tests.frontdoor.conftest import Front

pytestmark = pytest.mark.slow


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ask(front: Front, key: str, **fields) -> dict:
    with front.client(headers=bearer(key)) as agent:
        run = agent.post("/api/v1/runs/", json={"task": "clean up"})
        assert run.status_code == 201, run.text
        body = {
            "run": run.json()["id"],
            "title": "Delete old logs",
            "action": {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}},
            **fields,
        }
        made = agent.post("/api/v1/checkpoints/", json=body)
        assert made.status_code == 201, made.text
        return made.json()


# --- No state shared between requests ---------------------------------------------------------


def test_it_never_hands_a_logged_in_session_to_a_cookieless_client(front, people, agent_key):
    checkpoint = ask(front, agent_key)
    with front.client() as rita:
        assert front.login(rita, "rita").status_code == 302
        home = rita.get("/admin/")
        assert home.status_code == 200 and "rita" in home.text
        review = rita.get(urlparse(checkpoint["review_url"]).path)
        assert review.status_code == 200, review.status_code

        # Requests without a cookie, between and during rita's: none of them is rita.
        def anonymous(results: list) -> None:
            with front.client() as stranger:
                for _ in range(5):
                    page = stranger.get("/admin/")
                    queue = stranger.get("/api/v1/queue/")
                    results.append((page.status_code, page.text, queue.status_code))
                    assert "sessionid" not in stranger.cookies

        results: list = []
        threads = [threading.Thread(target=anonymous, args=(results,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for _ in range(10):
            assert rita.get("/admin/").status_code == 200
        for thread in threads:
            thread.join()
    assert len(results) == 20
    for page_status, page_text, queue_status in results:
        assert page_status == 302 and "rita" not in page_text
        assert queue_status in (401, 403)
    # And an anonymous POST of a decision (with any CSRF token it could find) changes nothing.
    with front.client() as stranger:
        login_page = stranger.get("/accounts/login/")
        token = login_page.cookies.get("csrftoken") or stranger.cookies.get("csrftoken") or "x"
        decided = stranger.post(
            f"/admin/approvals/checkpoint/{checkpoint['id']}/decide/",
            data={"outcome": "reject", "reason": "no", "csrfmiddlewaretoken": token},
            headers={"Origin": front.url, "Referer": f"{front.url}/admin/"},
        )
        assert decided.status_code in (302, 403, 404)
    assert Checkpoint.objects.get(pk=checkpoint["id"]).status == Checkpoint.Status.PENDING
    assert not Decision.objects.exists()


def test_it_never_carries_a_credential_from_one_client_to_another(front, agent_key):
    with front.client(headers=bearer(agent_key)) as agent, front.client() as stranger:
        for _ in range(3):
            assert agent.get("/api/v1/runs/").status_code == 200
            refused = stranger.get("/api/v1/runs/")
            assert refused.status_code == 401, refused.text
            assert refused.headers["content-type"] == "application/problem+json"


# --- Headers ----------------------------------------------------------------------------------


def test_it_takes_header_values_that_are_not_ascii(front, agent_key):
    with front.client() as client:
        health = client.get("/api/v1/health/", headers={"X-Name": "café".encode()})
        assert health.status_code == 200
        latin = client.get("/api/v1/health/", headers={"X-Name": b"\xe9\xff"})
        assert latin.status_code == 200
        token = client.get("/api/v1/runs/", headers={"Authorization": "Bearer é€".encode()})
        assert token.status_code == 401 and token.json()["status"] == 401
        cookie = client.get("/admin/", headers={"Cookie": "sessionid=é€".encode()})
        assert cookie.status_code == 302
        # The agent's own request with a non-ASCII header still works.
        runs = client.get("/api/v1/runs/", headers={**bearer(agent_key), "X-Trace": "ü".encode()})
        assert runs.status_code == 200


@pytest.mark.parametrize("size", [40 * 1024, 1024 * 1024])
def test_it_refuses_oversized_headers_with_a_status(front, size):
    with front.client() as client:
        response = client.get("/api/v1/health/", headers={"X-Big": "a" * size})
    assert response.status_code in (400, 431), response.status_code
    with front.client() as client:  # the server is fine afterwards
        assert client.get("/api/v1/health/").status_code == 200


def test_it_drops_hop_by_hop_headers_and_never_upgrades(front, agent_key):
    with front.client(headers=bearer(agent_key)) as client:
        upgraded = client.get(
            "/api/v1/runs/", headers={"Connection": "Upgrade", "Upgrade": "websocket"}
        )
        assert upgraded.status_code == 200
        named = client.get(
            "/api/v1/runs/", headers={"Connection": "keep-alive, Authorization"}
        )  # a client naming a credential as hop-by-hop still gets an ordinary answer
        assert named.status_code in (200, 401)
    for response in (upgraded, named):
        assert not (
            "content-length" in response.headers and "transfer-encoding" in response.headers
        )
        assert response.headers.get("upgrade") is None


# --- Bodies -----------------------------------------------------------------------------------


def _post_json(front: Front, key: str, raw: bytes, chunked: bool = False) -> httpx.Response:
    headers = {**bearer(key), "Content-Type": "application/json"}
    content = iter([raw[i : i + 65536] for i in range(0, len(raw), 65536)]) if chunked else raw
    with front.client(headers=headers) as client:
        return client.post("/api/v1/checkpoints/", content=content)


def _json_of_size(size: int) -> bytes:
    head = b'{"pad": "'
    tail = b'"}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize(
    "size,expected",
    [
        (0, 400),
        (1, 400),
        (1024, 400),
        ("limit", 400),  # at the limit: read and validated (not a checkpoint: 400)
        ("limit+1", 413),
        (12 * 1024 * 1024, 413),
    ],
)
def test_it_answers_every_body_size(front, agent_key, size, expected):
    limit = settings.HITL_API_MAX_BODY_BYTES
    size = {"limit": limit, "limit+1": limit + 1}.get(size, size)
    raw = b"" if size == 0 else b"{" if size == 1 else _json_of_size(size)
    response = _post_json(front, agent_key, raw)
    assert response.status_code == expected, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert not Checkpoint.objects.exists()


def test_it_refuses_a_streamed_body_over_the_limit(front, agent_key):
    raw = _json_of_size(12 * 1024 * 1024)
    response = _post_json(front, agent_key, raw, chunked=True)
    assert response.status_code == 413, response.text[:300]
    assert response.json()["code"] == "payload_too_large"


def test_it_streams_uploads_and_downloads_byte_for_byte(front, agent_key):
    blob = os.urandom(20 * 1024 * 1024)
    with front.client(headers=bearer(agent_key)) as agent:
        made = agent.post(
            "/api/v1/artifacts/",
            files={"file": ("big.bin", blob, "application/octet-stream")},
            data={"kind": "file"},
        )
        assert made.status_code == 201, made.text[:300]
        content_url = f"/api/v1/artifacts/{made.json()['id']}/content/"
        digest = hashlib.sha256()
        received = 0
        with agent.stream("GET", content_url) as download:
            assert download.status_code == 200
            for chunk in download.iter_raw():
                digest.update(chunk)
                received += len(chunk)
    assert received == len(blob)
    assert digest.hexdigest() == hashlib.sha256(blob).hexdigest()


def test_it_refuses_an_upload_over_the_limit(front, agent_key):
    too_big = b"\0" * (settings.HITL_API_MAX_UPLOAD_BYTES + 2 * 1024 * 1024)
    with front.client(headers=bearer(agent_key)) as agent:
        response = agent.post(
            "/api/v1/artifacts/", files={"file": ("big.bin", too_big, "application/octet-stream")}
        )
    assert response.status_code == 413, response.text[:300]


def test_it_answers_head(front):
    with front.client() as client:
        health = client.head("/api/v1/health/")
        login = client.head("/accounts/login/")
    assert health.status_code == 200 and health.content == b""
    assert login.status_code == 200 and login.content == b""


# --- The routes the ASGI server owns ------------------------------------------------------------


def test_it_wakes_a_long_poll_through_the_port(front, agent_key, reviewer_token):
    checkpoint = ask(front, agent_key)
    answer: dict = {}

    def wait() -> None:
        with front.client(headers=bearer(agent_key)) as agent:
            answer["response"] = agent.get(
                f"/api/v1/checkpoints/{checkpoint['id']}/wait", params={"timeout": 30}
            )

    waiter = threading.Thread(target=wait)
    waiter.start()
    with front.client(headers=bearer(reviewer_token)) as rita:
        decided = rita.post(
            f"/api/v1/checkpoints/{checkpoint['id']}/decision/",
            json={"outcome": "approve", "action_sha256": checkpoint["current_action_sha256"]},
        )
        assert decided.status_code in (200, 201), decided.text
    waiter.join(40)
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    with front.client() as stranger:
        refused = stranger.get(f"/api/v1/checkpoints/{checkpoint['id']}/wait?timeout=1")
    assert refused.status_code == 401


def test_it_serves_mcp_through_the_port(front, agent_key):
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "contract-test", "version": "1"},
        },
    }
    headers = {**bearer(agent_key), "Accept": "application/json, text/event-stream"}
    with front.client(headers=headers) as client:
        response = client.post("/mcp", json=initialize)
        metadata = client.get("/.well-known/oauth-protected-resource/mcp")
        anonymous = httpx.post(f"{front.url}/mcp", json=initialize, verify=front.verify, timeout=30)
    assert response.status_code == 200, response.text
    text = response.text
    payload = json.loads(text[text.index("{") :].splitlines()[0]) if "data:" in text else None
    payload = payload or response.json()
    assert payload["result"]["serverInfo"]["name"]
    assert metadata.status_code == 200 and "resource" in metadata.json()
    assert anonymous.status_code == 401


# --- Who the client is ------------------------------------------------------------------------


def test_it_limits_failed_logins_per_client_not_for_everyone(front, people):
    limited = "Too many failed login attempts"
    with front.client(source="127.0.0.2") as attacker:
        pages = []
        for n in range(12):
            headers = {"X-Forwarded-For": f"10.0.0.{n}"}  # believed from no one
            attacker.headers.update(headers)
            pages.append(front.login(attacker, f"nobody{n}", "wrong").text)
        assert limited not in pages[0]
        assert limited in pages[-1]  # the attacker is limited...
    with front.client(source="127.0.0.3") as rita:  # ...and only the attacker
        assert front.login(rita, "rita").status_code == 302
        assert rita.get("/admin/").status_code == 200


def test_it_answers_a_problem_when_the_web_server_is_down(front):
    if front.kind != "nginx":
        pytest.skip("runportal serves every path itself: there is no upstream to lose")
    front.topology.stop_wsgi()
    try:
        with front.client() as client:
            down = client.get("/api/v1/runs/")
        assert down.status_code == 502
        assert down.headers["content-type"] == "application/problem+json"
        assert down.headers["retry-after"] == "5"
        assert down.json() == {
            "type": "about:blank",
            "title": "Bad Gateway",
            "status": 502,
            "code": "bad_gateway",
            "detail": "The portal is not answering; retry shortly.",
        }
    finally:
        front.topology.start_wsgi()
    with front.client() as client:
        assert client.get("/api/v1/health/").status_code == 200


def test_it_redirects_plain_http_to_https(front):
    if front.kind != "nginx":
        pytest.skip("runportal is a development server on plain HTTP")
    response = httpx.get(f"{front.topology.http_url}/admin/", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")
