"""`Idempotency-Key` on POSTs, with Stripe's semantics.

- Same key, same body (method + path + canonical JSON) → the stored response, replayed with
  `Idempotent-Replayed: true`.
- Same key, another body → 422.
- Concurrent duplicates → one resource. The record (with the response) is inserted at the
  end of the *same transaction* as the work it guards, in one write: a concurrent
  duplicate's INSERT (of the record, or of the resource's own unique key) waits on the unique
  index (PostgreSQL) or on the write lock (SQLite IMMEDIATE) until the first commits, fails,
  rolls back everything it did, finds the record and replays it. If the first fails (any
  exception, any non-2xx), its transaction rolls back with the record, and the same key may
  be retried.
- Scope: per agent (`agent:<id>`) or per user (`user:<id>`); records older than
  `HITL_IDEMPOTENCY_TTL_HOURS` (48) are purged by `purge_idempotency_records()`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from api.authentication import is_agent
from api.exceptions import IdempotencyMismatch
from api.models import IdempotencyRecord
from audit import events as audit
from core.canonical import canonical_json
from core.exceptions import Conflict

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_STORED_HEADERS = ("Location",)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (a UUID) up to 255 printable ASCII characters. Retrying a "
    "POST with the same key and body replays the first response (`Idempotent-Replayed: true`); "
    "the same key with another body is a 422. Keys are kept 48 h.",
)


def scope_for(user) -> str:
    return f"agent:{user.agent.pk}" if is_agent(user) else f"user:{user.pk}"


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= 255 and all(32 <= ord(c) < 127 for c in key)


def fingerprint(method: str, path: str, body_repr: str) -> str:
    return hashlib.sha256(f"{method}\n{path}\n{body_repr}".encode()).hexdigest()


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        record.response_body, status=record.response_status, content_type="application/json"
    )
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _existing(record: IdempotencyRecord, key: str, fp: str) -> HttpResponse:
    if record.fingerprint != fp:
        raise IdempotencyMismatch(
            f"Idempotency-Key {key!r} was first used for {record.method} {record.path} with "
            "another body; use a new key for a new request."
        )
    return _replay(record)


def run_idempotent(request, body_repr: str, handler: Callable[[], Response]) -> HttpResponse:
    """Run `handler` (the view's POST body) under the request's Idempotency-Key, if any."""
    key = request.headers.get(HEADER)
    if key is None:
        with audit.atomic(all_or_nothing=True):
            return handler()
    if not _valid_key(key):
        raise ValidationError({HEADER: ["Must be 1-255 printable ASCII characters."]})
    scope = scope_for(request.user)
    fp = fingerprint(request.method, request.path, body_repr)
    try:
        # Any exception rolls back the whole request: the transitions inside need no savepoint.
        with audit.atomic(all_or_nothing=True):
            response = handler()
            if not 200 <= response.status_code < 300:
                raise _NotStored(response)
            IdempotencyRecord.objects.create(
                scope=scope,
                key=key,
                fingerprint=fp,
                method=request.method,
                path=request.path[:500],
                response_status=response.status_code,
                response_body=JSONRenderer().render(response.data).decode(),
                response_headers={
                    h: response[h] for h in _STORED_HEADERS if response.has_header(h)
                },
            )
            return response
    except _NotStored as exc:
        return exc.response
    except (IntegrityError, Conflict):
        # A duplicate that lost the race (it waited on the first one's unique key, which then
        # committed), or a retry of a finished request: the first one's record answers it.
        # No record: the handler's own conflict, as it is.
        record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if record is None:
            raise
        return _existing(record, key, fp)


class _NotStored(Exception):
    """Roll back (record included) but still return this non-2xx response."""

    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response


def body_repr_json(request) -> str:
    return canonical_json(request.data)


class IdempotentMixin:
    """For APIViews: `post` runs the view's `perform_post` under the idempotency protocol,
    in one transaction."""

    def idempotency_body(self, request) -> str:
        return body_repr_json(request)

    def post(self, request, *args, **kwargs):
        body = self.idempotency_body(request)  # parse first: a malformed body is a plain 400
        return run_idempotent(request, body, lambda: self.perform_post(request, *args, **kwargs))

    def perform_post(self, request, *args, **kwargs) -> Response:
        raise NotImplementedError


def purge_idempotency_records(now: dt.datetime | None = None) -> int:
    """Delete records older than HITL_IDEMPOTENCY_TTL_HOURS; returns how many. Safe to run
    at any time on any number of processes."""
    cutoff = (now or timezone.now()) - dt.timedelta(hours=settings.HITL_IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
