"""What a checkpoint's times and outcome mean, defined once: the annotations the oversight
dashboard (through its rollups), the exports and the queue's CSV export all read, so a number
means the same everywhere (`oversight.analytics` builds the figures on them).

- time to resolution (any end), time to decision (a person decided), time to resume (the
  guide's metric: request → the agent learned the outcome);
- whether the SLA was breached (`sla_breached`);
- the outcome in one word (`outcome`).
"""

from __future__ import annotations

import datetime as dt

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone

from approvals.models import Checkpoint, Decision

Status = Checkpoint.Status
DECIDED = (Status.APPROVED, Status.REJECTED, Status.ANSWERED)
OUTCOMES = ["approve", "modify", "reject", "answer", "expired", "cancelled"]
OUTCOME_LABELS = {
    "approve": "Approved",
    "modify": "Approved with edits",
    "reject": "Rejected",
    "answer": "Answered",
    "expired": "Expired",
    "cancelled": "Cancelled",
    "pending": "Pending",
}


def _duration(end: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F("created_at"), output_field=DurationField())


def sla_breached(now: dt.datetime) -> Case:
    """The SLA result, defined once. True (breached) when the checkpoint was still pending at
    its SLA due time: a fact from that moment on, whether it is still pending or was resolved
    late. False (met) when it was resolved by then. None when there is no result: no SLA
    target, or pending and not due yet. The transitions mark the same ones
    (`sla_breached_at`, what Prometheus counts): the timer and the sweep when it falls due, a
    later resolution if they had not.

    Every SLA figure counts with this: breached = True, out of those with a result (True or
    False), over the requests made in the period (like the exports)."""
    return Case(
        When(sla_due_at__isnull=True, then=Value(None)),
        When(Q(resolved_at__isnull=True, sla_due_at__lte=now), then=Value(True)),
        When(resolved_at__isnull=True, then=Value(None)),
        When(resolved_at__gt=F("sla_due_at"), then=Value(True)),
        default=Value(False),
        output_field=BooleanField(null=True),
    )


def breached(qs: QuerySet[Checkpoint], now: dt.datetime) -> QuerySet[Checkpoint]:
    """The checkpoints of `qs` that breached their SLA (`sla_breached`)."""
    return qs.annotate(sla_breached=sla_breached(now)).filter(sla_breached=True)


def outcome() -> Case:
    """approve / modify (approved with edits) / reject / answer / expired / cancelled /
    pending."""
    edited = Exists(
        Decision.objects.filter(checkpoint=OuterRef("pk"), outcome=Decision.Outcome.MODIFY)
    )
    return Case(
        When(Q(status=Status.APPROVED) & edited, then=Value("modify")),
        When(status=Status.APPROVED, then=Value("approve")),
        When(status=Status.REJECTED, then=Value("reject")),
        When(status=Status.ANSWERED, then=Value("answer")),
        default=F("status"),
        output_field=CharField(),
    )


def with_times(qs: QuerySet[Checkpoint], now: dt.datetime | None = None) -> QuerySet[Checkpoint]:
    """Annotate `time_to_resolution` (any end), `time_to_decision` (a person decided),
    `time_to_resume` (until the agent side learned the outcome: a hosted run resumed, the
    webhook was delivered or the agent read it), `sla_breached` and `outcome`. Times are
    timedeltas (None while they do not apply)."""
    now = now or timezone.now()
    return qs.annotate(
        time_to_resolution=_duration("resolved_at"),
        time_to_decision=Case(
            When(status__in=DECIDED, then=_duration("resolved_at")),
            default=Value(None),
            output_field=DurationField(),
        ),
        time_to_resume=_duration("resumed_at"),
        sla_breached=sla_breached(now),
        outcome=outcome(),
    )


def seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)
