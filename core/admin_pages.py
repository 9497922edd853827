"""The one way a page of the admin is mounted (`page`), and the marker of the methods a view
takes (`allow`). Apart from `core.admin` (which registers the ledger's models, and so builds
the admin site) so that the site's own module (`hitlportal.admin`) may import it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial, wraps

from django.contrib.admin import AdminSite
from django.http import Http404, HttpRequest
from django.views.decorators.http import require_http_methods


def allow(*methods: str):
    """Mark which HTTP methods a view takes; `page` enforces it (405 for the others)."""

    def mark(view):
        view.http_methods = [m.upper() for m in methods]
        return view

    return mark


def page(
    site: AdminSite,
    view: Callable,
    methods: Sequence[str] | None = None,
    *,
    owner: object = None,
):
    """The one way a page of the admin is mounted (in a `get_urls`):

    - behind `site.admin_view` (a staff login, CSRF, never cached);
    - open only to the users the view's `only` marker admits (`managers_only`): a 404 for
      anyone else, before the method is looked at (for them the page does not exist);
    - taking only `methods` (default: the view's `allow()` marker; neither: any), 405
      otherwise;
    - called as `view(owner, request, …)` when `owner` (the ModelAdmin or the site the page
      belongs to) is given, `view(request, …)` otherwise."""
    methods = methods if methods is not None else getattr(view, "http_methods", None)
    only = getattr(view, "only", None)
    target = view if owner is None else partial(view, owner)
    if methods is not None:
        target = require_http_methods(list(methods))(target)
    if only is not None:
        target = _only(only, target)
    return site.admin_view(target)


def _only(admits: Callable, view: Callable) -> Callable:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not admits(request.user):
            raise Http404("No such page")
        return view(request, *args, **kwargs)

    return wrapper
