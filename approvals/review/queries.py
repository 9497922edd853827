"""Reads for the portal pages, all built on the role filter in `approvals.selectors`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, Count, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from approvals import rules, selectors
from approvals.models import Checkpoint, Decision
from audit.models import AuditEvent

Status = Checkpoint.Status

# `status = 'pending'` as a literal in the SQL, not a bound parameter: SQLite can only use
# the partial queue indexes (WHERE status = 'pending') when it sees the constant at prepare
# time; with `status = ?` it reads every row to check the status (33k rows: 3 ms vs 120 ms).
PENDING_LITERAL = RawSQL(
    f'"{Checkpoint._meta.db_table}"."status" = \'{Status.PENDING}\'',
    (),
    output_field=BooleanField(),
)


def only_pending(qs: QuerySet[Checkpoint]) -> QuerySet[Checkpoint]:
    return qs.filter(PENDING_LITERAL)


def queue_counts(user, now: dt.datetime | None = None) -> dict[str, int]:
    """The home page's numbers, in one query over the user's pending checkpoints."""
    now = now or timezone.now()
    soon = now + dt.timedelta(seconds=settings.HITL_DUE_SOON_SECONDS)
    qs = only_pending(selectors.checkpoints_visible_to(user))
    # Count a non-null column of the covering index `cp_queue_counts`, not the id (which is
    # not in it): counting the id would read every row of the queue.
    return qs.aggregate(
        pending=Count("deadline"),
        claimed_by_me=Count("deadline", filter=Q(claimed_by=user, claim_expires_at__gt=now)),
        due_soon=Count("deadline", filter=Q(deadline__gt=now, deadline__lte=soon)),
        overdue=Count("deadline", filter=Q(deadline__lte=now)),
    )


def latest_change_seq() -> int:
    """A cheap "has anything in any queue changed?" fingerprint: the newest audit event about
    a checkpoint (every request, claim, release, decision and expiry writes one)."""
    # The id, not the ledger seq: ids are assigned at insert, seqs only later by the sequencer.
    last = (
        AuditEvent.objects.filter(target_type="approvals.checkpoint")
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    return last or 0


def pending_queue(user) -> QuerySet[Checkpoint]:
    """The user's pending checkpoints in queue order (the selector's role filter, with the
    status as an SQL literal so the partial indexes apply)."""
    return only_pending(selectors.checkpoints_visible_to(user)).order_by("deadline", "id")


# Items sharing one deadline to the microsecond are rare; look at this many to break ties.
_TIE_WINDOW = 20


def _key(cp: Checkpoint) -> tuple:
    return (cp.deadline, str(cp.pk))


def neighbours(user, cp: Checkpoint) -> tuple[Checkpoint | None, Checkpoint | None]:
    """Previous and next items in the user's queue order (deadline, then id): two index
    range scans, not a scan of the queue."""
    queue = pending_queue(user).exclude(pk=cp.pk).only("pk", "title", "deadline")
    later = queue.filter(deadline__gte=cp.deadline)[:_TIE_WINDOW]
    earlier = queue.filter(deadline__lte=cp.deadline).order_by("-deadline", "-id")[:_TIE_WINDOW]
    nxt = next((c for c in later if _key(c) > _key(cp)), None)
    prev = next((c for c in earlier if _key(c) < _key(cp)), None)
    return prev, nxt


def next_in_queue(user, after: Checkpoint | None = None) -> Checkpoint | None:
    """Where to go after deciding: the next pending item in queue order, else the first."""
    if after is not None:
        _prev, nxt = neighbours(user, after)
        if nxt is not None:
            return nxt
        return pending_queue(user).exclude(pk=after.pk).first()
    return pending_queue(user).first()


@dataclass
class Routing:
    policy: str
    stages: list[dict]
    stage: int
    role: str
    approvals_needed: int
    approvals_so_far: int
    escalated: bool


def routing(cp: Checkpoint, decisions: list[Decision]) -> Routing:
    approvals = {
        d.reviewer_id
        for d in decisions
        if d.stage == cp.stage and d.outcome in (Decision.Outcome.APPROVE, Decision.Outcome.MODIFY)
    }
    stages = [
        {
            **s,
            "index": i,
            "state": "done" if i < cp.stage else "current" if i == cp.stage else "next",
        }
        for i, s in enumerate(cp.stages or [])
    ]
    version = cp.policy_version if cp.policy_version_id else None
    if version is not None:
        policy = version.label
    else:
        policy = cp.policy.name if cp.policy_id and cp.policy else "default (no policy matched)"
    return Routing(
        policy=policy,
        stages=stages,
        stage=cp.stage,
        role=cp.current_role,
        approvals_needed=cp.approvals_needed,
        approvals_so_far=len(approvals - {None}),
        escalated=cp.escalated,
    )


@dataclass
class TimelineEntry:
    at: dt.datetime
    kind: str  # a RunEvent kind, or "checkpoint" / "decision"
    text: str
    data: Any = None
    checkpoint: Checkpoint | None = None
    current: bool = False


TIMELINE_LIMIT = 200


def run_timeline(user, cp: Checkpoint) -> tuple[list[TimelineEntry], int]:
    """The run's story: its step log (RunEvent), its checkpoints and their decisions.
    Other checkpoints of the run that this user may not see are listed without details.
    Returns (entries, number of older run events left out)."""
    # The run's events through the Run foreign key: approvals reads agents' rows, never
    # imports agents' code.
    events_qs = cp.run.events.all()
    total = events_qs.count()
    events = list(events_qs.order_by("-at", "-id")[:TIMELINE_LIMIT])[::-1]
    entries = [TimelineEntry(e.at, e.kind, e.message, e.data or None) for e in events]
    visible = set(
        selectors.checkpoints_visible_to(user).filter(run_id=cp.run_id).values_list("pk", flat=True)
    )
    siblings = list(
        Checkpoint.with_drills.filter(run_id=cp.run_id)
        .select_related("resolved_by")
        .prefetch_related("decisions__reviewer", "decisions__policy_version")
        .order_by("created_at")
    )
    for other in siblings:
        shown = other.pk in visible
        entries.append(
            TimelineEntry(
                other.created_at,
                "checkpoint",
                other.title if shown else f"{other.get_kind_display()} checkpoint (another role)",
                checkpoint=other if shown else None,
                current=other.pk == cp.pk,
            )
        )
        if not shown:
            continue
        for d in other.decisions.all():
            text = f"{d.decider_label}: {d.get_outcome_display()}"
            if d.comment:
                text += f" — {d.comment}"
            if d.answer:
                text += f" — answer: {d.answer}"
            entries.append(TimelineEntry(d.created_at, "decision", text, checkpoint=other))
        if other.status in (Status.EXPIRED, Status.CANCELLED) and other.resolved_at:
            entries.append(
                TimelineEntry(
                    other.resolved_at,
                    "checkpoint-end",
                    f"{other.get_status_display()}: {other.resolution_reason}",
                    checkpoint=other,
                )
            )
    entries.sort(key=lambda e: e.at)
    return entries, max(0, total - TIMELINE_LIMIT)


def eligible_reviewers(cp: Checkpoint):
    """Who a manager may hand this checkpoint to: active staff in its current role, minus the
    four-eyes exclusions."""
    return rules.deciders(cp.current_role, cp).order_by("username")


def audit_trail(cp: Checkpoint, limit: int = 100) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            target_type="approvals.checkpoint", target_id=str(cp.pk)
        ).order_by("id")[:limit]
    )
