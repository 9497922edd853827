"""Cursor pagination for API lists: stable under inserts (no skipped or repeated rows while
new checkpoints arrive), ordered by fields that never move backwards."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirstPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


class OldestFirstPagination(NewestFirstPagination):
    ordering = ("created_at", "id")


class QueuePagination(NewestFirstPagination):
    # Soonest deadline first. A deadline only ever moves later (escalation), so a row can
    # reappear on a later page but is never skipped.
    ordering = ("deadline", "created_at")


class EventPagination(NewestFirstPagination):
    ordering = ("at", "id")
    page_size = 200
    max_page_size = 1000
