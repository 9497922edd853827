"""Evidence before and after a policy goes live: replay a draft against past checkpoints, and
compare a shadow policy's would-be decisions with what people decided.

Replay compiles the live policies with the draft in place of its policy's live version (a
routing table of its own, never the process's cache) and routes every checkpoint of the
last N days twice, with and without the draft, from the rows alone (one query for the
checkpoints, one for their artifacts' sizes and kinds). Nothing about routing is written.

It runs in the background: `replay_request` (the policy's managers only, audited) records a
`Replay` row and enqueues `approvals.tasks.replay_run`, which replays and writes its
progress and result on the row; the page shows them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals.models import (
    Artifact,
    Checkpoint,
    Policy,
    PolicyOutcome,
    PolicyVersion,
    Replay,
    ShadowMatch,
)
from approvals.policies.changes import check_may_replay
from approvals.policies.conditions import request_facts
from approvals.policies.routing import GLOB_CHARACTERS as GLOBS
from approvals.policies.routing import (
    Entry,
    RoutingTable,
    live_versions,
    route_for,
    routing_table,
)
from audit import events as audit
from audit.models import AuditVerb
from core.queue import enqueue

REPLAY_TASK = "approvals.tasks.replay_run"

S = Checkpoint.Status

# What people did with a checkpoint, as replay and shadow mode report it.
APPROVED, EDITED, REJECTED, ANSWERED, EXPIRED, CANCELLED, PENDING = (
    "approved", "edited", "rejected", "answered", "expired", "cancelled", "pending",
)  # fmt: skip


def human_verdict(status: str, action, final_action) -> str:
    if status == S.APPROVED:
        return EDITED if final_action is not None and final_action != action else APPROVED
    return str(status)


@dataclass
class Example:
    id: str
    title: str
    agent: str
    verdict: str
    created_at: dt.datetime


@dataclass
class ReplayResult:
    version: PolicyVersion
    days: int
    since: dt.datetime
    checkpoints: int = 0
    matched: int = 0
    would_approve: int = 0
    would_reject: int = 0
    routed_differently: int = 0
    # Of the checkpoints the draft would decide or route differently: what people did.
    verdicts: Counter = field(default_factory=Counter)
    # Would be approved automatically, but a person rejected or edited it (the ones to read).
    unsafe: list[Example] = field(default_factory=list)
    unsafe_count: int = 0
    # Would be rejected automatically, but a person approved it.
    blocked: list[Example] = field(default_factory=list)
    blocked_count: int = 0
    truncated: bool = False
    # Conditions over the evaluation budget on a request (not evaluated: no match).
    skipped: int = 0
    seconds: float = 0.0

    @property
    def verdict_counts(self) -> list[tuple[str, int]]:
        return sorted(self.verdicts.items())


EXAMPLES = 50
PROGRESS_EVERY = 500


def _key(entry: Entry | None) -> tuple:
    """What routing did with a request (who reviews, how long, what then), comparable
    between two tables: the default route and a policy routing the same way are equal."""
    if entry is not None and entry.policy.outcome != PolicyOutcome.ROUTE:
        return (entry.policy.outcome, entry.version.policy_id)
    route = route_for(entry)
    stages = tuple((s["role"], s["approvals"]) for s in route.stages)
    return ("route", stages, route.timeout_seconds, route.expiry_action, route.escalation_role)


def replay(
    version: PolicyVersion,
    *,
    days: int | None = None,
    now: dt.datetime | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """What `version` would have done to the checkpoints of the last `days` days (newest
    first, at most `limit`): how many it matches, would approve or reject automatically or
    route differently than the live policies do, and what people actually did with those.
    `progress(done, total)` is called as it goes (every PROGRESS_EVERY checkpoints)."""
    started = time.perf_counter()
    now = now or timezone.now()
    days = days or settings.HITL_REPLAY_DAYS
    limit = limit or settings.HITL_REPLAY_LIMIT
    since = now - dt.timedelta(days=days)
    live = live_versions()
    others = [v for v in live if v.policy_id != version.policy_id]
    # A shadow draft is replayed as if it were enforced: that is the question asked.
    version = PolicyVersion(
        pk=version.pk, policy_id=version.policy_id, number=version.number,
        snapshot={**version.snapshot, "shadow": False}, created_at=version.created_at,
    )  # fmt: skip
    compiled = routing_table().compiled  # the live conditions, compiled once per process
    with_draft = RoutingTable(
        "replay", [*others, version] if version.get("active", True) else others, compiled
    )
    without = RoutingTable("replay", live, compiled)
    mine = RoutingTable("replay", [version], with_draft.compiled)
    result = ReplayResult(version=version, days=days, since=since)

    history = Checkpoint.with_drills.filter(created_at__gte=since, created_at__lte=now)
    total = history.count()
    result.checkpoints, result.truncated = min(total, limit), total > limit
    # The draft's exact shorthands are filters in SQL: a request it cannot match keeps its
    # route, so only the others are read and routed (all of them for a condition-only draft).
    candidates = history.order_by("-created_at")
    snapshot = version.snapshot
    if snapshot.get("match_agent") and not set(snapshot["match_agent"]) & GLOBS:
        candidates = candidates.filter(agent__slug=snapshot["match_agent"])
    if snapshot.get("match_tool") and not set(snapshot["match_tool"]) & GLOBS:
        candidates = candidates.filter(action__tool=snapshot["match_tool"])
    if snapshot.get("match_kind"):
        candidates = candidates.filter(kind=snapshot["match_kind"])
    rows = list(
        candidates.values_list(
            "pk", "agent__slug", "action", "kind", "risk", "confidence", "title", "role_hint",
            "created_at", "status",
        )[:limit]
    )  # fmt: skip
    artifacts: dict = {}
    if rows:
        oldest = rows[-1][8]
        for cp_id, name, kind, size, content_type in Artifact.objects.filter(
            checkpoint__created_at__gte=oldest, checkpoint__created_at__lte=now
        ).values_list("checkpoint_id", "name", "kind", "size", "content_type"):
            artifacts.setdefault(cp_id, []).append(
                {"name": name, "kind": kind, "size": size, "content_type": content_type}
            )
    affected = []
    for i, (pk, agent, action, kind, risk, confidence, title, hint, created, status) in enumerate(
        rows
    ):
        if progress is not None and i % PROGRESS_EVERY == 0:
            progress(i, len(rows))
        action = action or {}
        tool = str(action.get("tool") or "")
        facts = request_facts(
            agent_slug=agent, action=action, kind=kind, risk=risk, confidence=confidence,
            title=title, role_hint=hint, artifacts=artifacts.get(pk, []), now=created,
        )  # fmt: skip
        args = {"agent": agent, "tool": tool, "kind": kind, "risk": risk, "facts": facts}
        matching = mine.matching(**args, now=created)
        result.skipped += bool(facts.skipped)
        if matching is None:
            continue  # the draft cannot change what happens to a request it does not match
        result.matched += 1
        winner, _ = with_draft.decide(**args, now=created)
        before, _ = without.decide(**args, now=created)
        decides = winner is not None and winner.version.pk == version.pk
        if not decides and _key(winner) == _key(before):
            continue
        affected.append((pk, title, agent, created, status, action, decides and winner.outcome))
        if _key(winner) != _key(before):
            result.routed_differently += 1
    # What people did, for the requests the draft changes: approvals read their final action
    # (edited or not) in a second query, only for these.
    approved = [a[0] for a in affected if a[4] == S.APPROVED]
    finals = {}
    for i in range(0, len(approved), 2000):
        finals.update(
            Checkpoint.with_drills.filter(pk__in=approved[i : i + 2000]).values_list(
                "pk", "final_action"
            )
        )
    for pk, title, agent, created, status, action, outcome in affected:
        verdict = human_verdict(status, action, finals.get(pk))
        result.verdicts[verdict] += 1
        if outcome not in (PolicyOutcome.AUTO_APPROVE, PolicyOutcome.AUTO_REJECT):
            continue
        approve = outcome == PolicyOutcome.AUTO_APPROVE
        if approve:
            result.would_approve += 1
        else:
            result.would_reject += 1
        if agrees(outcome, verdict) is False:  # a person decided the other way
            examples = result.unsafe if approve else result.blocked
            if approve:
                result.unsafe_count += 1
            else:
                result.blocked_count += 1
            if len(examples) < EXAMPLES:
                examples.append(Example(str(pk), title, agent, verdict, created))
    result.seconds = time.perf_counter() - started
    return result


def result_data(result: ReplayResult) -> dict:
    """A result as the `Replay` row stores it (JSON)."""
    data = asdict(result)
    data.pop("version")
    data["since"] = result.since.isoformat()
    data["verdicts"] = dict(result.verdicts)
    for key in ("unsafe", "blocked"):
        data[key] = [{**e, "created_at": e["created_at"].isoformat()} for e in data[key]]
    return data


def replay_request(
    policy: Policy, version: PolicyVersion, *, user, days: int | None = None
) -> Replay:
    """Replay `version` against the last `days` days, in the background: NotAllowed unless
    `user` manages the policy (`policies.may_replay`). Audited; the task is enqueued at
    commit. A replay of the same version and window still queued or running is returned
    instead of a second one (enqueued again if it has waited longer than the broker's lease:
    a broker may lose a task, and the task runs a replay once)."""
    check_may_replay(user, policy)
    days = max(1, min(days or settings.HITL_REPLAY_DAYS, 3650))
    with audit.atomic():
        pending = Replay.objects.filter(
            version=version, days=days, status__in=(Replay.Status.QUEUED, Replay.Status.RUNNING)
        ).first()
        if pending is not None:
            lease = dt.timedelta(seconds=settings.Q_CLUSTER["retry"])
            if (
                pending.status == Replay.Status.QUEUED
                and pending.created_at < timezone.now() - lease
            ):
                transaction.on_commit(lambda: enqueue(REPLAY_TASK, str(pending.pk), reason="lost"))
            return pending
        run = Replay.objects.create(policy=policy, version=version, days=days, requested_by=user)
        audit.record(
            audit.Actor.for_user(user),
            AuditVerb.POLICY_REPLAYED,
            policy,
            {"version": version.number, "days": days, "replay": str(run.pk)},
        )
        transaction.on_commit(lambda: enqueue(REPLAY_TASK, str(run.pk), reason="replay"))
    return run


# --- shadow mode: agreement with people -----------------------------------------------------------


@dataclass
class ShadowReport:
    policy: Policy
    matched: int = 0
    agreed: int = 0
    disagreed: int = 0
    undecided: int = 0  # still pending, or expired / cancelled without a person's decision
    disagreements: list[tuple[ShadowMatch, str]] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        decided = self.agreed + self.disagreed
        return self.agreed / decided if decided else None


def agrees(would: str, verdict: str) -> bool | None:
    """Did the person decide what the policy would have? None: no person decided."""
    if verdict in (PENDING, EXPIRED, CANCELLED):
        return None
    if would == PolicyOutcome.AUTO_APPROVE:
        return verdict in (APPROVED, ANSWERED)
    return verdict == REJECTED


def shadow_report(policy: Policy, *, limit: int = 200) -> ShadowReport:
    """Every request a shadow version of `policy` matched, against what people decided."""
    report = ShadowReport(policy)
    matches = (
        ShadowMatch.objects.filter(version__policy=policy)
        .select_related("checkpoint", "checkpoint__agent", "version")
        .filter(Q(checkpoint__isnull=False))
        .order_by("-created_at")
    )
    for match in matches.iterator(chunk_size=2000):
        cp = match.checkpoint
        verdict = human_verdict(cp.status, cp.action, cp.final_action)
        report.matched += 1
        agreed = agrees(match.would, verdict)
        if agreed is None:
            report.undecided += 1
        elif agreed:
            report.agreed += 1
        else:
            report.disagreed += 1
            if len(report.disagreements) < limit:
                report.disagreements.append((match, verdict))
    return report
