"""One error format for the whole API: RFC 9457 problem details (`application/problem+json`).

    {"type": "about:blank", "title": "Conflict", "status": 409, "code": "conflict",
     "detail": "Checkpoint is already approved (by rita)", ...extension members}

Validation errors carry `errors`: DRF's field → messages mapping (nested for nested fields).
Conflicts carry `current_status`, `winner` and `at`, so an agent learns who decided first.
A halted agent's calls are 423 Locked with `agent`, `halted_by`, `halted_at` and `reason`.

`problem_for(exc)` is the one mapping from an exception to a problem: DRF's exception handler,
the long-poll view, its ASGI fast path and the MFA middleware all use it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from api.exceptions import AgentHaltedError, ConflictError, PayloadTooLarge
from core.exceptions import Conflict, Halted, InvalidInput, NotAllowed

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(status_code: int, detail: Any, code: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "code": code,
        "detail": detail,
    }
    body.update(extra)
    return body


def _flatten_detail(detail: Any) -> Any:
    """ErrorDetail trees → plain strings/lists/dicts."""
    if isinstance(detail, dict):
        return {str(k): _flatten_detail(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten_detail(v) for v in detail]
    return str(detail)


def _first_message(errors: Any) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            msg = _first_message(value)
            return msg if field == "non_field_errors" else f"{field}: {msg}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def as_api_exception(exc: Exception) -> exceptions.APIException | None:
    """Domain and Django exceptions → the DRF exception that says the same; None for a bug."""
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Conflict):
        return ConflictError(exc)
    if isinstance(exc, Halted):
        return AgentHaltedError(exc)
    if isinstance(exc, NotAllowed):
        return exceptions.PermissionDenied(str(exc), code=exc.code)
    if isinstance(exc, InvalidInput):
        invalid = exceptions.ValidationError(exc.errors())
        invalid.problem_code = exc.code  # e.g. outcome_not_allowed; default "invalid"
        return invalid
    if isinstance(exc, (ObjectDoesNotExist, Http404)):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        # A model-level check (e.g. a malformed UUID reaching a lookup): the client's input.
        return exceptions.ValidationError({"non_field_errors": exc.messages})
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(str(exc))
    return None


def problem_for(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """(status, problem body) for an exception; None if it is a bug (→ 500)."""
    api_exc = as_api_exception(exc)
    if api_exc is None:
        return None
    status = api_exc.status_code
    if isinstance(api_exc, exceptions.ValidationError):
        errors = _flatten_detail(api_exc.detail)
        if not isinstance(errors, dict):
            errors = {"non_field_errors": errors if isinstance(errors, list) else [errors]}
        code = getattr(api_exc, "problem_code", "invalid")
        return status, problem(
            status, _first_message(errors) or "Invalid input.", code, errors=errors
        )
    code = api_exc.get_codes()
    body = problem(
        status, _flatten_detail(api_exc.detail), code if isinstance(code, str) else "error"
    )
    if isinstance(api_exc, ConflictError):
        c = api_exc.conflict
        body.update(
            current_status=c.status or None,
            winner=c.winner or None,
            at=c.at.isoformat() if c.at else None,
        )
    if isinstance(api_exc, AgentHaltedError):
        h = api_exc.halted
        body.update(
            agent=h.agent, halted_by=h.by, halted_at=h.at.isoformat() if h.at else None,
            reason=h.reason,
        )  # fmt: skip
    if isinstance(api_exc, exceptions.Throttled) and api_exc.wait is not None:
        body["retry_after"] = int(api_exc.wait) + 1
    return status, body


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error rendered as a problem (DRF adds the headers:
    WWW-Authenticate, Retry-After, and rolls back the view's transaction)."""
    api_exc = as_api_exception(exc)
    if api_exc is None:
        return None  # a bug: Django's 500 handler answers (also as a problem, see handler500)
    response = drf_exception_handler(api_exc, context)
    response.data = problem_for(api_exc)[1]
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def problem_response(status_code: int, detail: str, code: str, **extra: Any) -> JsonResponse:
    return JsonResponse(
        problem(status_code, detail, code, **extra),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


# Paths that programs call (the REST API, the HumanLayer-compatible API, MCP): their errors
# are JSON problems, never HTML pages.
MACHINE_PATHS = ("/api/", "/humanlayer/", "/mcp")


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(MACHINE_PATHS)


def handler404(request: HttpRequest, exception: Exception | None = None):
    if is_api(request):
        return problem_response(404, "Not found.", "not_found")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest):
    if is_api(request):
        return problem_response(
            500,
            "Internal error; it was logged. Retrying with the same Idempotency-Key is safe.",
            "server_error",
        )
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None):
    if is_api(request):
        return problem_response(400, "Bad request.", "bad_request")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception | None = None):
    if is_api(request):
        return problem_response(403, "Forbidden.", "permission_denied")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)
