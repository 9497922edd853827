"""Two guards ahead of the views:

- Query parameters and the path are text a database can store: a NUL (`%00`) reaching a
  PostgreSQL query is a 500, so it is a 400 naming the parameter here, for every endpoint
  and every page (the admin's search box and filters too: a plain 400 page there).
- A database that is down or unreachable is a 503 problem (with Retry-After) on /api/, not
  a 500: for the client it is an outage to wait out, not a bug."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from api.errors import is_api, problem_response
from core.canonical import check_storable_text
from core.exceptions import InvalidInput

log = logging.getLogger(__name__)
RETRY_AFTER = 5


def database_unavailable() -> HttpResponse:
    response = problem_response(
        503, "The database is unavailable; retry shortly.", "database_unavailable"
    )
    response["Retry-After"] = str(RETRY_AFTER)
    return response


def is_outage(exc: BaseException) -> bool:
    """The database is down, unreachable, restarting, or (SQLite) locked past its busy
    timeout: worth a retry. A query's own errors are other DatabaseError subclasses."""
    return isinstance(exc, OperationalError | InterfaceError)


class ApiGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            check_storable_text(request.path)
        except InvalidInput as exc:
            return self._refuse(request, str(exc))
        for name, values in request.GET.lists():
            for value in (name, *values):
                try:
                    check_storable_text(value)
                except InvalidInput as exc:
                    return self._refuse(request, f"{name}: {exc}", name, str(exc))
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, detail: str, name: str = "", why: str = "") -> HttpResponse:
        if is_api(request):
            errors = {"errors": {name: [why]}} if name else {}
            return problem_response(400, detail, "invalid", **errors)
        return HttpResponseBadRequest(f"Bad request: {detail}", content_type="text/plain")

    def process_exception(self, request: HttpRequest, exception: Exception):
        if is_api(request) and is_outage(exception):
            log.error("database unavailable: %s", exception)
            return database_unavailable()
        return None
