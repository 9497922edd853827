"""The ASGI server's part: long-poll, and the one limit on request bodies.

`GET /api/v1/checkpoints/<uuid>/wait` with a bearer token is answered here, in the event loop,
before Django's request machinery (which would give every in-flight request its own thread).
Everything else goes to the app inside: Django's ASGI handler (and /mcp, mounted around this
in hitlportal/asgi.py). There is no proxy in this process: `make run` serves every path from
this one app, and production routes by path in a real reverse proxy (docs/production.md), so
no state is ever shared between two clients' requests here.

Authentication, throttling and the checkpoint read are the same functions the Django view
uses, run on the small waiter thread pool; waking is the per-process hub (waiters.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from urllib.parse import parse_qs

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework import exceptions

from api import waiters
from api.errors import MACHINE_PATHS, PROBLEM_CONTENT_TYPE, problem, problem_for
from api.middleware import RETRY_AFTER, is_outage
from api.wait import check_throttle, load_state, parse_timeout, principal_for_token

log = logging.getLogger(__name__)

WAIT_PATH = re.compile(
    r"^/api/v1/checkpoints/(?P<pk>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12})/wait/?$"
)


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


class LongPollApp:
    def __init__(self, django_app):
        self.django_app = django_app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] == "http" and scope["method"] == "GET":
            match = WAIT_PATH.match(scope["path"])
            if match and _header(scope, b"authorization"):
                return await self._wait(scope, receive, send, match["pk"].lower())
        return await self.django_app(scope, receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await waiters.get_hub().stop()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _wait(self, scope, receive, send, pk: str):
        host, _port = split_domain_port(_header(scope, b"host"))
        if not validate_host(host, settings.ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"]):
            return await _respond(send, 400, problem(400, "Invalid Host header.", "bad_request"))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        authorization = _header(scope, b"authorization")
        principal_box: list = []

        def first() -> dict:
            principal = principal_for_token(authorization)
            check_throttle(principal)
            principal_box.append(principal)
            return load_state(principal, pk)

        def again() -> dict:
            return load_state(principal_box[0], pk)

        try:
            timeout = parse_timeout((query.get("timeout") or [None])[-1])
            waiting = asyncio.ensure_future(
                waiters.wait_until_resolved(pk, timeout, again, first=first)
            )
            gone = asyncio.ensure_future(_disconnected(receive))
            done, _ = await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
            if waiting not in done:  # the client hung up: stop waiting, send nothing
                waiting.cancel()
                return
            gone.cancel()
            data = waiting.result()
        except exceptions.APIException as exc:
            status, body = problem_for(exc)
            extra = [(b"www-authenticate", b'Bearer realm="hitl"')] if status == 401 else []
            return await _respond(send, status, body, extra)
        except Exception as exc:
            if is_outage(exc):  # the database is down or restarting: wait it out, like the API
                log.error("long-poll of checkpoint %s: database unavailable: %s", pk, exc)
                body = problem(
                    503, "The database is unavailable; retry shortly.", "database_unavailable"
                )
                retry = [(b"retry-after", str(RETRY_AFTER).encode())]
                return await _respond(send, 503, body, retry)
            log.exception("long-poll of checkpoint %s failed", pk)
            return await _respond(send, 500, problem(500, "Internal error.", "server_error"))
        await _respond(send, 200, data)


async def _disconnected(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _respond(send, status: int, body: dict, extra_headers=()) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    content_type = b"application/json" if status < 400 else PROBLEM_CONTENT_TYPE.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestLimits:
    """ASGI: request heads over `HITL_MAX_HEADER_BYTES` are refused with 431; a request body
    over its limit is refused with 413 before the app reads it, and a streamed (chunked) one
    as soon as it passes the limit. Limits: multipart uploads
    `HITL_API_MAX_UPLOAD_BYTES` (plus room for the multipart framing), other bodies on the
    machine paths and /integrations/ `HITL_API_MAX_BODY_BYTES`, pages' forms
    `DATA_UPLOAD_MAX_MEMORY_SIZE`.

    A refused body is read and dropped first (up to `_DRAIN_BYTES` / `_DRAIN_SECONDS`, like
    nginx's lingering close): closing a socket with unread data makes the kernel send a
    reset, and the client would see a broken connection instead of the 413. A client that
    sent `Expect: 100-continue` is answered at once and never sends the body."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        head += sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > settings.HITL_MAX_HEADER_BYTES:
            detail = (
                f"Request headers are over the limit of {settings.HITL_MAX_HEADER_BYTES} bytes."
            )
            return await _refuse(scope, None, send, 431, detail)
        limit = body_limit(scope)
        declared = _header(scope, b"content-length")
        if declared:
            if not declared.isdigit():
                return await _refuse(scope, receive, send, 400, "Invalid Content-Length.")
            if int(declared) > limit:
                drain = _header(scope, b"expect").lower() != "100-continue"
                return await _too_large(scope, receive, send, limit, drain)
        seen = 0
        over = False
        started = False

        async def limited_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True  # the app sees the client leave; we answer for it
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message):
            nonlocal started
            if over and not started:
                return  # the app's answer to a client it was told left (MCP's is a 500): ours
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _too_large(scope, receive, send, limit, drain=True)


# Room for the multipart framing around an upload of the largest allowed size.
_MULTIPART_OVERHEAD = 64 * 1024
_DRAIN_BYTES = 64 * 1024 * 1024
_DRAIN_SECONDS = 10.0


def body_limit(scope) -> int:
    if _header(scope, b"content-type").lower().startswith("multipart/form-data"):
        return settings.HITL_API_MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD
    if scope["path"].startswith((*MACHINE_PATHS, "/integrations/")):  # (Slack's actions too)
        return settings.HITL_API_MAX_BODY_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or settings.HITL_API_MAX_BODY_BYTES


async def _too_large(scope, receive, send, limit: int, drain: bool) -> None:
    if drain:
        await _drain(receive)
    detail = f"Request body is over the limit of {limit} bytes."
    await _refuse(scope, None, send, 413, detail)


async def _drain(receive) -> None:
    async def read() -> None:
        dropped = 0
        while dropped < _DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body"):
                return

    try:
        await asyncio.wait_for(read(), _DRAIN_SECONDS)
    except TimeoutError:
        pass


async def _refuse(scope, receive, send, status: int, detail: str) -> None:
    """A problem on the machine paths, a short text elsewhere; the connection is closed
    after it (the rest of the request, if any, is not read)."""
    close = [(b"connection", b"close")]
    if scope["path"].startswith(MACHINE_PATHS):
        code = {413: "payload_too_large", 431: "headers_too_large"}.get(status, "bad_request")
        return await _respond(send, status, problem(status, detail, code), close)
    payload = detail.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(payload)).encode()),
                *close,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
