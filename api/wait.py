"""GET /checkpoints/{id}/wait?timeout=N — long-poll for a decision.

Two entry points, one behaviour:
- Under ASGI (`make run`, production) requests with a bearer token are answered by
  `api.asgi.LongPollApp` before Django's request machinery: no per-request thread,
  no per-request database connection; a per-process hub wakes waiters (see waiters.py).
- Everywhere else (WSGI, the test client, browser sessions) `checkpoint_wait` below serves
  the same URL as a Django async view that polls briefly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.views import APIView

from api.access import note_agent_read, visible_checkpoint
from api.authentication import authenticate_bearer, is_agent
from api.errors import PROBLEM_CONTENT_TYPE, problem, problem_for
from api.permissions import IsAgentOrPerson
from api.schema import document_view
from api.serializers import CheckpointOutSerializer
from api.throttling import hit, identity
from api.waiters import WAIT_POLL_INTERVAL
from approvals.receipts import await_sealed
from approvals.representations import checkpoint_data

MAX_TIMEOUT = 60.0
DEFAULT_TIMEOUT = 30.0


def parse_timeout(raw: str | None) -> float:
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise exceptions.ValidationError({"timeout": ["A number of seconds, 0-60."]}) from None
    if not 0 <= value <= MAX_TIMEOUT or value != value:
        raise exceptions.ValidationError({"timeout": ["A number of seconds, 0-60."]})
    return value


def principal_for_token(authorization: str) -> Any:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise exceptions.AuthenticationFailed(
            "Malformed Authorization header; use 'Bearer <token>'."
        )
    result = authenticate_bearer(token.strip())
    if result is None:
        raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
    return result[0]


def check_throttle(principal) -> None:
    wait = hit(*identity(principal))
    if wait is not None:
        raise exceptions.Throttled(wait)


def load_state(principal, pk) -> dict:
    cp = visible_checkpoint(principal, pk)
    if is_agent(principal):
        note_agent_read(cp)
    # A decision the agent waited for comes with its ledger seq and signed receipt.
    return checkpoint_data(cp, event=await_sealed(cp))


def _django_principal(request: HttpRequest):
    authorization = request.headers.get("Authorization", "")
    if authorization:
        return principal_for_token(authorization)
    user = request.user
    if not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    return user


async def checkpoint_wait(request: HttpRequest, pk) -> JsonResponse:
    """The Django view (see the module docstring for when it, rather than the ASGI fast
    path, answers)."""
    if request.method not in ("GET", "HEAD"):
        response = _json(
            405, problem(405, f"Method {request.method} not allowed.", "method_not_allowed")
        )
        response["Allow"] = "GET, HEAD"
        return response
    loop = asyncio.get_running_loop()
    try:
        timeout = parse_timeout(request.GET.get("timeout"))
        principal = await sync_to_async(_django_principal)(request)
        await sync_to_async(check_throttle)(principal)
        data = await sync_to_async(load_state)(principal, pk)
        deadline = loop.time() + timeout
        while data["status"] == "pending" and loop.time() < deadline:
            await asyncio.sleep(min(WAIT_POLL_INTERVAL, deadline - loop.time()))
            data = await sync_to_async(load_state)(principal, pk)
    except exceptions.APIException as exc:
        status, body = problem_for(exc)
        response = _json(status, body)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="hitl"'
        return response
    return JsonResponse(data, headers={"Cache-Control": "no-store"})


def _json(status: int, body: dict) -> JsonResponse:
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


class CheckpointWaitSchema(APIView):
    """Documentation of `checkpoint_wait` for the OpenAPI schema (drf-spectacular reads
    views from `callback.cls`; the async function is what actually runs)."""

    permission_classes = [IsAgentOrPerson]

    @extend_schema(
        operation_id="checkpoints_wait",
        tags=["checkpoints"],
        summary="Long-poll for the decision",
        description="Returns as soon as the checkpoint is decided (approved, rejected, "
        "answered, expired or cancelled), or after `timeout` seconds with its still-pending "
        "state. Call it again until `status` is not `pending`.",
        parameters=[
            OpenApiParameter(
                "timeout",
                {"type": "number", "minimum": 0, "maximum": MAX_TIMEOUT},
                description="Seconds to wait, 0-60 (default 30).",
            )
        ],
        responses={200: CheckpointOutSerializer},
    )
    def get(self, request, pk):  # pragma: no cover - never routed
        raise NotImplementedError


document_view(checkpoint_wait, CheckpointWaitSchema)
