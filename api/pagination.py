"""Cursor pagination for API lists: stable under inserts (no skipped or repeated rows while
new checkpoints arrive), ordered by fields that never move backwards."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class NewestFirstPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_page_size(self, request) -> int:
        # DRF silently falls back to the default on a bad value; a client asking for
        # limit=abc has a bug worth telling it about.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"limit": [f"An integer, 1-{self.max_page_size}."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        for param in params:
            if param["name"] == self.page_size_query_param:
                param["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return params


class QueuePagination(NewestFirstPagination):
    # Soonest deadline first. A deadline only ever moves later (escalation), so a row can
    # reappear on a later page but is never skipped.
    ordering = ("deadline", "created_at")


class EventPagination(NewestFirstPagination):
    ordering = ("at", "id")
    page_size = 200
    max_page_size = 1000
