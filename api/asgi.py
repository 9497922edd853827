"""The ASGI server's part: long-poll. `GET /api/v1/checkpoints/<uuid>/wait` with a bearer
token is answered here, in the event loop, before Django's request machinery (which would
give every in-flight request its own thread).

Everything else belongs to the WSGI server (production routes by path, see the README). With
`HITL_WSGI_UPSTREAM` set (what `runportal` does: one port for everything in development and
in the live-server tests) this app forwards every other request to that WSGI server over
HTTP; without it, to Django's ASGI handler in this process.

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
from api.errors import PROBLEM_CONTENT_TYPE, problem, problem_for
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


# Connection-level headers are not forwarded (RFC 9110 7.6.1).
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


class LongPollApp:
    def __init__(self, django_app, upstream: str = ""):
        self.django_app = django_app
        self.upstream = upstream.rstrip("/")
        self._http = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] == "http" and scope["method"] == "GET":
            match = WAIT_PATH.match(scope["path"])
            if match and _header(scope, b"authorization"):
                return await self._wait(scope, receive, send, match["pk"].lower())
        if scope["type"] == "http" and self.upstream:
            return await self._forward(scope, receive, send)
        return await self.django_app(scope, receive, send)

    async def _forward(self, scope, receive, send):
        """Pass the request to the WSGI server and stream its answer back (bodies streamed
        both ways: uploads and downloads of any size)."""
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=None, follow_redirects=False)

        async def body():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body"):
                    return

        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        ]
        client = scope.get("client")
        if client:
            headers.append(("x-forwarded-for", client[0]))
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.upstream + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        url += f"?{query}" if query else ""
        request = self._http.build_request(scope["method"], url, headers=headers, content=body())
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("upstream %s: %s", self.upstream, exc)
            return await _respond(send, 502, problem(502, "The API server is down.", "bad_gateway"))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in response.headers.multi_items()
                        if k.lower() not in _HOP_BY_HOP
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await waiters.get_hub().stop()
                    if self._http is not None:
                        await self._http.aclose()
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
