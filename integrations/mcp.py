"""`/mcp`: the MCP approval server over streamable HTTP, mounted in the portal's ASGI app.

The tools are `hitl_client.mcp`'s (one contract for `hitl mcp` and this endpoint); here they
get an in-process backend: `agents.services.ask_once` to ask, the REST API's checkpoint JSON,
its authentication (an agent key as bearer, verified by the SDK's `TokenVerifier` hook, so a
missing or bad key is a 401 with `WWW-Authenticate` before any MCP processing) and its
long-poll hub to wait. Stateless (`stateless_http=True`, `json_response=True`): any web
worker answers any request, no session affinity. Requests from one agent and one MCP client
(its `clientInfo.name`) share a run.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from rest_framework.exceptions import APIException, NotFound
from rest_framework.exceptions import ValidationError as DRFValidationError

from agents import services
from agents.models import AgentKey
from api.authentication import AgentPrincipal
from api.errors import PROBLEM_CONTENT_TYPE, problem, problem_for
from api.middleware import RETRY_AFTER, is_outage
from api.serializers import CheckpointCreateSerializer
from api.wait import check_throttle, load_state
from api.waiters import run_db, wait_until_resolved
from approvals.representations import checkpoint_data
from audit import events as audit
from audit.events import Actor
from hitl_client.mcp import PortalUnavailable, RequestRefused, UnknownCheckpoint, build_server

PATH = "/mcp"
METADATA_PREFIX = "/.well-known/oauth-protected-resource"


class AgentKeyVerifier:
    """The SDK's `TokenVerifier`: an active agent's API key, else None (→ 401)."""

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            key = await run_db(services.AGENT_KEYS.authenticate, token)
        except Exception as exc:
            if is_outage(exc):
                down = _database_down.get()
                if down is not None:
                    down.append(exc)
                raise DatabaseDown from exc
            raise
        if key is None:
            return None
        return AccessToken(token=token, client_id=f"agent:{key.agent.slug}", scopes=[],
                           claims={"key_id": key.pk})  # fmt: skip


def _key_id() -> int:
    """The verified key of the current request (read in the event loop: the context variable
    does not follow the work into the database threads)."""
    token = get_access_token()
    if token is None:  # cannot happen behind RequireAuthMiddleware
        raise RequestRefused("Not authenticated.")
    return (token.claims or {})["key_id"]


def _principal(key_id: int) -> AgentPrincipal:
    key = AgentKey.objects.select_related("agent").get(pk=key_id)
    principal = AgentPrincipal(agent=key.agent, key=key)
    try:
        check_throttle(principal)
    except APIException as exc:
        raise RequestRefused(str(exc.detail)) from None
    return principal


def _refusal(exc: Exception) -> RequestRefused:
    found = problem_for(exc)
    if found is None:
        raise exc
    _status, problem = found
    errors = problem.get("errors")
    return RequestRefused(f"{problem['detail']}" + (f" {errors}" if errors else ""))


class DatabaseDown(Exception):
    """The database is unavailable while a request's key is checked: McpMount answers 503."""


async def _db(fn, *args):
    """`run_db`, with an outage told to the model as one (the tool says what happened and
    that it may retry), not as an internal error."""
    try:
        return await run_db(fn, *args)
    except Exception as exc:
        if is_outage(exc):
            raise PortalUnavailable(
                "the approval portal's database is unavailable (503 database_unavailable)", True
            ) from None
        raise


class PortalBackend:
    """The tools' backend for one HTTP request: its agent (from the verified key), in
    process."""

    async def request_approval(self, body: dict[str, Any], client_name: str) -> dict:
        return await _db(self._create, _key_id(), body, client_name)

    def _create(self, key_id: int, body: dict[str, Any], client_name: str) -> dict:
        principal = _principal(key_id)
        agent = principal.agent
        actor = Actor.for_agent(agent)
        try:
            with audit.atomic():
                run = services.run_for_external_id(
                    agent,
                    f"mcp:{client_name}",
                    task=f"MCP requests from {client_name}",
                    actor=actor,
                    metadata={"source": "mcp", "client": client_name},
                )
                data = CheckpointCreateSerializer(data={**body, "run": str(run.pk)})
                data.is_valid(raise_exception=True)
                (cp,) = services.ask(run, [data.to_ask()], actor=actor)
        except Exception as exc:
            raise _refusal(exc) from None
        return checkpoint_data(cp, agent_slug=agent.slug)

    async def get(self, checkpoint_id: str) -> dict:
        key_id = _key_id()

        def load() -> dict:
            principal = _principal(key_id)
            try:
                return load_state(principal, checkpoint_id)
            except (NotFound, DRFValidationError, ValueError):
                raise UnknownCheckpoint(checkpoint_id) from None
            except Exception as exc:
                if problem_for(exc) is not None:  # e.g. a malformed id
                    raise UnknownCheckpoint(checkpoint_id) from None
                raise

        return await _db(load)

    async def wait(self, checkpoint_id: str, seconds: float) -> dict:
        principal = await _db(_principal, _key_id())
        try:
            return await wait_until_resolved(
                checkpoint_id, seconds, lambda: load_state(principal, checkpoint_id)
            )
        except Exception as exc:
            if is_outage(exc):
                raise PortalUnavailable(
                    "the approval portal's database is unavailable (503 database_unavailable)",
                    True,
                ) from None
            raise


def _allowed_hosts() -> list[str]:
    hosts = [h for h in settings.ALLOWED_HOSTS if h and h != "*" and not h.startswith(".")]
    site = urlparse(settings.SITE_URL).netloc
    return sorted({*hosts, *(f"{h}:*" for h in hosts), site})


def build_app():
    """The SDK's Starlette app for /mcp (and the protected-resource metadata)."""
    server = build_server(
        PortalBackend,
        token_verifier=AgentKeyVerifier(),
        auth=AuthSettings(
            issuer_url=settings.SITE_URL,
            resource_server_url=settings.SITE_URL + PATH,
            # Agent keys are the portal's own, not OAuth tokens issued for some resource.
            validate_token_resource=False,
        ),
    )
    wildcard = "*" in settings.ALLOWED_HOSTS
    return server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=not wildcard,
            allowed_hosts=_allowed_hosts(),
            allowed_origins=[settings.SITE_URL],
        ),
    )


class McpMount:
    """ASGI: /mcp and its metadata to the MCP app, everything else to `inner`. The MCP app's
    lifespan (its session manager's task group) runs around the inner app's."""

    def __init__(self, inner):
        self.inner = inner
        self.mcp_app = build_app()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            async with self.mcp_app.router.lifespan_context(self.mcp_app):
                return await self.inner(scope, receive, send)
        path = scope.get("path", "")
        if scope["type"] == "http" and path in (PATH, PATH + "/") and scope["method"] == "GET":
            return await _no_event_stream(send)
        if scope["type"] == "http" and (
            path in (PATH, PATH + "/") or path.startswith(METADATA_PREFIX)
        ):
            return await _unless_down(read_first, self.mcp_app, scope, receive, send)
        return await self.inner(scope, receive, send)


# Set around each /mcp request: the key check appends to it when the database is down.
_database_down: ContextVar[list | None] = ContextVar("mcp_database_down", default=None)


async def _unless_down(serve, app, scope, receive, send):
    """The database went away while the request's key was being checked: a 503 problem (with
    Retry-After, like the API) instead of the 500 the SDK's error middleware answers (it
    answers before the exception reaches here, so its answer is replaced on the way out)."""
    down: list = []
    token = _database_down.set(down)
    replaced = False

    async def watched(message):
        nonlocal replaced
        if replaced:
            return
        if message["type"] == "http.response.start" and message["status"] >= 500 and down:
            replaced = True
            await _respond_database_down(send)
            return
        await send(message)

    try:
        return await serve(app, scope, receive, watched)
    except DatabaseDown:
        if not replaced:
            await _respond_database_down(send)
    finally:
        _database_down.reset(token)


async def _respond_database_down(send) -> None:
    body = json.dumps(
        problem(503, "The database is unavailable; retry shortly.", "database_unavailable")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_first(app, scope, receive, send):
    """`app` once the whole body has arrived. The body limit is the front's
    (`api.asgi.RequestLimits`): past it, the front ends the body with a disconnect and answers
    413 itself, as long as nothing answered yet; the MCP SDK would answer that disconnect with
    a 500 of its own. So the body is read here first (the SDK buffers it whole anyway), and a
    request whose client left (or was cut off) is not handed on."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay():
        return pending.pop() if pending else await receive()

    return await app(scope, replay, send)


async def _no_event_stream(send) -> None:
    """GET /mcp: 405, the MCP spec's answer from a server that offers no event stream. This
    one is stateless, so it never has anything to push there; the SDK would otherwise hold
    the stream open, pinging every 15 s, for as long as the client likes (through any proxy
    timeout), and clients open it only with a session id, which they never get here."""
    body = json.dumps(
        problem(405, "GET is not allowed on /mcp: POST JSON-RPC requests.", "method_not_allowed")
    ).encode()
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"allow", b"POST"),
    ]
    await send({"type": "http.response.start", "status": 405, "headers": headers})
    await send({"type": "http.response.body", "body": body})
