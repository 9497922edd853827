"""One error format for the whole API: RFC 9457 problem details (`application/problem+json`).

    {"type": "about:blank", "title": "Conflict", "status": 409, "code": "conflict",
     "detail": "Checkpoint is already approved (by rita)", ...extension members}

Validation errors carry `errors`: DRF's field → messages mapping (nested for nested fields).
Conflicts carry `current_status`, `winner` and `at`, so an agent learns who decided first.
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

from agents.api.exceptions import ConflictError, IdempotencyMismatch, PayloadTooLarge
from approvals.exceptions import Conflict, InvalidDecision, NotAllowed

__all__ = ["ConflictError", "IdempotencyMismatch", "PayloadTooLarge", "exception_handler"]

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


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: domain exceptions mapped, everything rendered as a problem."""
    if isinstance(exc, Conflict):
        exc = ConflictError(exc)
    elif isinstance(exc, NotAllowed):
        exc = exceptions.PermissionDenied(str(exc))
    elif isinstance(exc, InvalidDecision):
        exc = exceptions.ValidationError({exc.field: [str(exc)]})
    elif isinstance(exc, ObjectDoesNotExist):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoValidationError):
        # A model-level check (e.g. a malformed UUID reaching a lookup): the client's input.
        exc = exceptions.ValidationError({"non_field_errors": exc.messages})
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(str(exc))
    elif isinstance(exc, (Http404, PermissionDenied)):
        pass  # DRF maps these itself

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handler answers (also as a problem, see handler500)

    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten_detail(exc.detail)
        if not isinstance(errors, dict):
            errors = {"non_field_errors": errors if isinstance(errors, list) else [errors]}
        body = problem(
            response.status_code,
            _first_message(errors) or "Invalid input.",
            "invalid",
            errors=errors,
        )
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        body = problem(
            response.status_code,
            _flatten_detail(detail),
            code if isinstance(code, str) else "error",
        )
        if isinstance(exc, ConflictError):
            c = exc.conflict
            body.update(
                current_status=c.status or None,
                winner=c.winner or None,
                at=c.at.isoformat() if c.at else None,
            )
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            body["retry_after"] = int(exc.wait) + 1
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def problem_response(status_code: int, detail: str, code: str, **extra: Any) -> JsonResponse:
    return JsonResponse(
        problem(status_code, detail, code, **extra),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return problem_response(404, "Not found.", "not_found")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest):
    if _is_api(request):
        return problem_response(
            500,
            "Internal error; it was logged. Retrying with the same Idempotency-Key is safe.",
            "server_error",
        )
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return problem_response(400, "Bad request.", "bad_request")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return problem_response(403, "Forbidden.", "permission_denied")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)
