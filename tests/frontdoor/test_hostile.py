"""What an outside attacker found at the front doors (runportal and nginx), through their
public ports: every refusal reaches the client as the portal's own status, never a 5xx, a
gateway error or a broken connection."""

from __future__ import annotations

import json
import socket
import ssl
from collections import Counter
from urllib.parse import urlparse

import h11
import httpx
import pytest
from django.conf import settings

from agents.models import Run
from tests.frontdoor.conftest import Front

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _post(front: Front, path: str, body: bytes, headers: dict[str, str]) -> int | str:
    try:
        with front.client(headers=headers) as client:  # a new connection each time
            return client.post(path, content=body).status_code
    except Exception as exc:  # a reset or a truncated answer is a finding too
        return type(exc).__name__


def test_it_answers_a_body_it_refuses_unread_with_its_own_status(front, agent_key):
    # The portal answers these without reading the body: no credentials (401), a declared
    # length over the API's limit (413), a form without a CSRF token (403). Behind nginx, the
    # WSGI server used to close the connection with the body unread while nginx was still
    # sending it: nginx then answered 502 (about one request in six).
    json = {"Content-Type": "application/json"}
    agent = {**json, "Authorization": f"Bearer {agent_key}"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    under, over = b"a" * (2 * MiB - 64 * 1024), b"a" * (2 * MiB + 256 * 1024)
    cases = [
        ("/api/v1/runs/", under, json, 401),
        ("/api/v1/runs/", over, agent, 413),
        ("/accounts/login/", over, form, 403),
    ]
    for path, body, headers, expected in cases:
        statuses = Counter(_post(front, path, body, headers) for _ in range(25))
        assert statuses == {expected: 25}, (path, expected, statuses)
    assert not Run.objects.exists()


def test_it_refuses_a_streamed_mcp_body_over_the_limit_with_413(front, agent_key):
    # A chunked body has no length to check first. The MCP app, told the client left when
    # the body passed the limit, answered 500 itself; the client gets the 413 the API gives.
    limit = settings.HITL_API_MAX_BODY_BYTES
    raw = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "'
    raw += b"a" * limit + b'"}}'
    headers = {
        "Authorization": f"Bearer {agent_key}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    with front.client(headers=headers) as client:
        response = client.post(
            "/mcp", content=iter([raw[i : i + 65536] for i in range(0, len(raw), 65536)])
        )
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"


def _raw_exchange(front: Front, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client would, read one response (parsed by h11)."""
    url = urlparse(front.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    if url.scheme == "https":
        sock = ssl.create_default_context(cafile=front.verify).wrap_socket(
            sock, server_hostname=url.hostname
        )
    conn = h11.Connection(h11.CLIENT)
    with sock:
        sock.sendall(request)
        status, headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, headers, body


@pytest.mark.parametrize(
    "request_bytes,status",
    [
        (b"GET /api/v1/runs/%00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
        (b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1x\r\n\r\n", 400),
        (b"GET /api/v1/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
        (b"POST /api/v1/runs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET /api/v1/runs/ HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505),
    ],
    ids=["nul-in-path", "bad-length", "long-uri", "transfer-coding", "http-version"],
)
def test_it_answers_what_nginx_refuses_itself_with_a_problem(nginx_front, request_bytes, status):
    got, headers, body = _raw_exchange(nginx_front, request_bytes)
    assert got == status, body[:200]
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == status


def test_it_redirects_plain_http_to_its_own_name_and_shows_no_version(nginx_front):
    response = httpx.get(
        f"{nginx_front.topology.http_url}/admin/?next=/x",
        headers={"Host": "evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 301
    assert response.headers["location"] == "https://hitl.example.com/admin/?next=/x"
    assert response.headers["server"] == "nginx"
    with nginx_front.client() as client:
        assert client.get("/api/v1/health/").headers["server"] == "nginx"


def test_it_holds_no_event_stream_open_on_mcp(front, agent_key):
    # The MCP app is stateless: it never pushes anything on a GET stream, but held one open,
    # pinging every 15 s, forever (two of nginx's connections each, through any timeout).
    headers = {"Authorization": f"Bearer {agent_key}", "Accept": "text/event-stream"}
    with front.client(headers=headers, timeout=5) as client:
        for _ in range(3):
            response = client.get("/mcp")
            assert response.status_code == 405, response.text[:200]
            assert response.headers["allow"] == "POST"
            assert response.json()["code"] == "method_not_allowed"


def _answers(front: Front) -> bool:
    """Health answers within a client's patience (10 s), or not at all."""
    try:
        with front.client(timeout=10) as client:
            return client.get("/api/v1/health/").status_code == 200
    except httpx.TimeoutException:
        return False


def test_a_flood_of_huge_heads_does_not_stall_anyone_else(runportal_front):
    """Heads of 400,000 tiny headers from four clients in a loop (uvicorn's h11 parsed each
    for ~2 s in the one event loop): refused, and other clients are still answered."""
    import threading

    port = urlparse(runportal_front.url).port
    head = b"GET /api/v1/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"a:b\r\n" * 400_000 + b"\r\n"
    stop = threading.Event()
    answers: list[bytes] = []

    def flood() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    sock.sendall(head)
                    answers.append(sock.recv(64).split(b"\r\n")[0])
            except OSError:
                answers.append(b"reset")

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        answered = [_answers(runportal_front) for _ in range(10)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    # Refused: answered 431, or reset when the server closed on the rest of a head it had
    # already refused (a close with unread data is a reset to a client still sending)
    refused = b"HTTP/1.1 431 Request Header Fields Too Large"
    assert refused in answers and set(answers) <= {refused, b"reset"}, answers
    assert all(answered), answered


def test_a_thousand_idle_connections_do_not_shut_anyone_out(runportal_front):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2500
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files (the hard limit is {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    port = urlparse(runportal_front.url).port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1100)]
    try:
        assert _answers(runportal_front)
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
