"""CSV export of the checkpoint list as filtered on screen (status, role, agent, search...).

It goes through the changelist, so the role filter of `approvals.selectors` applies: a
reviewer exports only what they may see; managers export everything.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone

from approvals import durations
from approvals.models import AUTOMATIC_OUTCOMES, Checkpoint

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

MAX_ROWS = 100_000
COLUMNS = [
    "id", "created_at", "agent", "run", "kind", "title", "risk", "status", "role", "stage",
    "policy", "deadline", "resolved_at", "resolved_by", "seconds_to_resolution", "sla_seconds",
    "sla_breached", "escalated", "reason", "answer", "final_action_sha256",
    "policy_version", "decided_by_policy", "confidence",
]  # fmt: skip


def decided_by_policy(cp: Checkpoint) -> str:
    """The policy version that decided it automatically, or "" (a person or nobody did)."""
    version = cp.policy_version if cp.policy_version_id else None
    if version is None or cp.resolved_by_id or version.get("outcome") not in AUTOMATIC_OUTCOMES:
        return ""
    return (
        version.label
        if cp.status in (Checkpoint.Status.APPROVED, Checkpoint.Status.REJECTED)
        else ""
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _row(cp: Checkpoint) -> list:
    # `durations.with_times` annotations: the definitions the oversight pages use too.
    took = durations.seconds(cp.time_to_resolution)
    breached = "" if cp.sla_breached is None else cp.sla_breached  # "": no SLA result yet
    return [
        cp.pk, cp.created_at.isoformat(), cp.agent.slug, cp.run_id, cp.kind, cp.title, cp.risk,
        cp.status, cp.current_role, cp.stage, cp.policy.name if cp.policy else "",
        cp.deadline.isoformat(), cp.resolved_at.isoformat() if cp.resolved_at else "",
        cp.resolved_by.get_username() if cp.resolved_by else "",
        took if took is not None else "", cp.sla_seconds or "", breached,
        cp.escalated, cp.resolution_reason, cp.answer, cp.final_action_sha256,
        cp.policy_version.number if cp.policy_version_id else "", decided_by_policy(cp),
        "" if cp.confidence is None else cp.confidence,
    ]  # fmt: skip


def _safe(value) -> str:
    # Spreadsheet formula injection: agent-supplied text must not start a formula.
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        return HttpResponseBadRequest("Unknown filter in the query string.")
    qs = (
        durations.with_times(changelist.get_queryset(request))
        .select_related("agent", "policy", "policy_version", "resolved_by")
        .defer("action", "context", "options", "final_action", "stages")
    )
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(COLUMNS)
        for cp in qs[:MAX_ROWS].iterator(chunk_size=2000):
            yield writer.writerow([_safe(v) for v in _row(cp)])

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="checkpoints-{stamp}.csv"'
    return response


export_csv.http_methods = ["GET", "HEAD"]
