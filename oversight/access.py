"""Who may open the oversight pages: managers (the `HITL_MANAGERS_GROUP` group) and
superusers, read-only. Everyone else gets a 404, as for a page that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed

from core.roles import is_manager


def managers_only(*methods: str) -> Callable:
    allowed = [m.upper() for m in methods or ("GET", "HEAD")]

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not is_manager(request.user):
                raise Http404("No such page")
            if request.method not in allowed:
                return HttpResponseNotAllowed(allowed)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
