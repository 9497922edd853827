"""Who may open the oversight pages: managers (the `HITL_MANAGERS_GROUP` group) and
superusers, read-only. Everyone else gets a 404, as for a page that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse

from core.admin_pages import allow
from core.roles import is_manager


def managers_only(*methods: str) -> Callable:
    """A manager's page taking `methods` (default GET, HEAD). The view checks for a manager
    itself; `core.admin.page` (how urls.py mounts it) also answers 404 to anyone else before
    it looks at the method, then enforces `methods` (the `allow` marker)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not is_manager(request.user):
                raise Http404("No such page")
            return view(request, *args, **kwargs)

        wrapper.only = is_manager
        return allow(*(methods or ("GET", "HEAD")))(wrapper)

    return decorate
