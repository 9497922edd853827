"""Oversight analytics: the figures managers read, built on the definitions of
`approvals.durations` (re-exported here: time to resolution/decision/resume, the SLA result
and the outcome mean the same on every page and in every export).

- **Rollups** (`refresh_rollups`): per day and per group (agent, tool, kind, policy, role,
  risk), kept by the sweep. Percentiles need every duration: PostgreSQL could compute them
  (`percentile_cont`), SQLite cannot, and either would read every checkpoint of a 90-day
  period per page view. One implementation for both databases instead: each rollup row keeps
  its durations, sorted, and the dashboard merges a few thousand rows. Percentiles are exact
  (linear interpolation between closest ranks, as `percentile_cont`).
- **Dashboard** (`dashboard`) and **reviewer analytics** (`reviewer_stats`): plain data for
  the oversight pages; no HTML here.

Drills (`Checkpoint.drill`) are left out of every figure but the reviewers' drill columns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import (
    Count,
    F,
    FilteredRelation,
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone

from approvals.durations import (  # noqa: F401  (the definitions, read through here too)
    DECIDED,
    OUTCOME_LABELS,
    OUTCOMES,
    Status,
    breached,
    outcome,
    seconds,
    sla_breached,
    with_times,
)
from approvals.models import Checkpoint, Decision, Policy
from approvals.review.queries import only_pending
from oversight.models import OversightRollup, RollupState

DIMS = ("agent_id", "tool", "kind", "policy_id", "current_role", "risk")
PERCENTILES = (50, 90, 99)
_LOCK_KEY = 0x4A172  # pg advisory lock: one rollup writer at a time


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    n = len(sorted_values)
    if not n:
        return None
    rank = (n - 1) * p / 100
    low = int(rank)
    high = min(low + 1, n - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def checkpoint_type(agent_slug: str, kind: str, tool: str) -> str:
    """The guide's "checkpoint type": agent + tool for approvals, agent + kind otherwise."""
    if kind == Checkpoint.Kind.APPROVAL and tool:
        return f"{agent_slug} · {tool}"
    return f"{agent_slug} · {kind}"


# --- rollups --------------------------------------------------------------------------------

# Checkpoints updated this long before the last watermark are looked at again: a transaction
# that stamped `updated_at` before the watermark may have committed after it.
_MARGIN = dt.timedelta(minutes=5)


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _utc_day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.UTC).date()


def _ms(value: dt.timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds() * 1000)


def rebuild_day(day: dt.date, now: dt.datetime | None = None) -> int:
    """Recompute one day's rollup rows from the checkpoints (requests made that day, and
    what was resolved that day). Returns the number of rows written."""
    now = now or timezone.now()
    start, end = _day_bounds(day)
    real = Checkpoint.objects.all()
    groups: dict[tuple, dict[str, Any]] = {}

    def group(key: tuple) -> dict[str, Any]:
        if key not in groups:
            groups[key] = {
                "requests": 0, "escalated": 0, "resolved": 0, **dict.fromkeys(OUTCOMES, 0),
                "sla_total": 0, "sla_breached": 0, "ttd_ms": [], "ttr_ms": [],
            }  # fmt: skip
        return groups[key]

    # SLA results belong to the day of the request, like the exports' rows: the day is
    # rebuilt whenever one of its requests changes (breach marked, resolved).
    made = (
        real.filter(created_at__gte=start, created_at__lt=end)
        .annotate(sla=sla_breached(now))
        .values(*DIMS)
        .annotate(
            n=Count("id"),
            esc=Count("id", filter=Q(escalated=True)),
            sla_total=Count("id", filter=Q(sla__isnull=False)),
            sla_breached=Count("id", filter=Q(sla=True)),
        )
        .order_by()
    )
    for row in made:
        g = group(tuple(row[d] for d in DIMS))
        g["requests"] += row["n"]
        g["escalated"] += row["esc"]
        g["sla_total"] += row["sla_total"]
        g["sla_breached"] += row["sla_breached"]
    ended = with_times(real.filter(resolved_at__gte=start, resolved_at__lt=end), now).values_list(
        *DIMS, "outcome", "time_to_decision", "time_to_resume"
    )
    for *key, out, ttd, ttr in ended.iterator(chunk_size=2000):
        g = group(tuple(key))
        g["resolved"] += 1
        g[out] += 1
        if ttd is not None:
            g["ttd_ms"].append(_ms(ttd))
        if ttr is not None:
            g["ttr_ms"].append(_ms(ttr))
    rows = [
        OversightRollup(
            day=day,
            agent_id=key[0],
            tool=key[1],
            kind=key[2],
            policy_id=key[3],
            role=key[4],
            risk=key[5],
            requests=g["requests"],
            escalated=g["escalated"],
            resolved=g["resolved"],
            **{name: g[name] for name in OUTCOMES},
            sla_total=g["sla_total"],
            sla_breached=g["sla_breached"],
            ttd_ms=",".join(map(str, sorted(g["ttd_ms"]))),
            ttr_ms=",".join(map(str, sorted(g["ttr_ms"]))),
        )
        for key, g in groups.items()
    ]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        OversightRollup.objects.filter(day=day).delete()
        OversightRollup.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def _dirty_days(since: dt.datetime | None) -> set[dt.date]:
    qs = Checkpoint.with_drills.all()
    if since is not None:
        qs = qs.filter(updated_at__gte=since - _MARGIN)
    days: set[dt.date] = set()
    for created, resolved in qs.values_list("created_at", "resolved_at").iterator(chunk_size=5000):
        days.add(_utc_day(created))
        if resolved is not None:
            days.add(_utc_day(resolved))
    return days


def refresh_rollups(now: dt.datetime | None = None, *, full: bool = False) -> dict[str, int]:
    """Bring the rollups up to date: every day touched by a checkpoint that changed since the
    last refresh (all days the first time, or with `full`). The sweep calls this."""
    now = now or timezone.now()
    state, _ = RollupState.objects.get_or_create(name="checkpoints")
    since = None if full else state.watermark
    days = _dirty_days(since)
    if since is None:
        OversightRollup.objects.exclude(day__in=days).delete()
    rows = sum(rebuild_day(day, now) for day in sorted(days))
    done = timezone.now()
    changed = {"changed_at": done} if days else {}
    RollupState.objects.filter(pk=state.pk).update(watermark=now, refreshed_at=done, **changed)
    if days:
        warm_dashboards(now)
    return {"days": len(days), "rows": rows}


def rollups_state() -> tuple[dt.datetime | None, dt.datetime | None]:
    """(refreshed_at, changed_at) of the rollups."""
    row = (
        RollupState.objects.filter(name="checkpoints")
        .values_list("refreshed_at", "changed_at")
        .first()
    )
    return row or (None, None)


DEFAULT_PERIODS = (7, 30, 90)


def warm_dashboards(now: dt.datetime | None = None) -> None:
    """Compute the unfiltered dashboard of the usual periods right after a refresh, so that
    managers' first view of them is a cache hit too."""
    today = _utc_day(now or timezone.now())
    for days in DEFAULT_PERIODS:
        figures(Filters(start=today - dt.timedelta(days=days - 1), end=today))


# --- the dashboard --------------------------------------------------------------------------


@dataclass
class Filters:
    start: dt.date
    end: dt.date  # inclusive
    agent: int | None = None
    tool: str = ""
    policy: int | None = None
    role: str = ""
    risk: str = ""

    @property
    def start_at(self) -> dt.datetime:
        return _day_bounds(self.start)[0]

    @property
    def end_at(self) -> dt.datetime:
        return _day_bounds(self.end)[1]

    def _q(self, role_field: str) -> Q:
        q = Q()
        for field_name, value in (
            ("agent_id", self.agent), ("tool", self.tool), ("policy_id", self.policy),
            (role_field, self.role), ("risk", self.risk),
        ):  # fmt: skip
            if value:
                q &= Q(**{field_name: value})
        return q

    def rollup_q(self) -> Q:
        return self._q("role")

    def checkpoint_q(self) -> Q:
        """The same filters on Checkpoint rows (no period; drills left out)."""
        return Q(drill__isnull=True) & self._q("current_role")

    def checkpoints(self) -> QuerySet[Checkpoint]:
        """Checkpoints requested in the period, filtered (what the exports export)."""
        return Checkpoint.with_drills.filter(
            self.checkpoint_q(), created_at__gte=self.start_at, created_at__lt=self.end_at
        )


COUNTS = ("requests", "escalated", "resolved", *OUTCOMES, "sla_total", "sla_breached")


@dataclass
class Group:
    """One line of a breakdown: counts, outcomes, durations and SLA results."""

    key: Any
    label: str = ""
    requests: int = 0
    escalated: int = 0
    resolved: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    sla_total: int = 0
    sla_breached: int = 0
    ttd: list[int] = field(default_factory=list)  # milliseconds, merged from the rollup rows
    ttr: list[int] = field(default_factory=list)
    ttd_p: dict[int, float | None] = field(default_factory=dict)
    ttr_p: dict[int, float | None] = field(default_factory=dict)
    decided: int = 0
    resumed: int = 0

    def count(self, sums: dict[str, int]) -> None:
        self.requests += sums["requests"] or 0
        self.escalated += sums["escalated"] or 0
        self.resolved += sums["resolved"] or 0
        self.sla_total += sums["sla_total"] or 0
        self.sla_breached += sums["sla_breached"] or 0
        for name in OUTCOMES:
            if sums[name]:
                self.outcomes[name] = self.outcomes.get(name, 0) + sums[name]

    def finish(self, parts: list[Group] | None = None) -> Group:
        """Percentiles of the durations gathered; a total is finished from its finished parts
        (their sorted lists merge in one pass: far cheaper than sorting everything again)."""
        if parts is not None:
            ttd = sorted(chain.from_iterable(g.ttd for g in parts))
            ttr = sorted(chain.from_iterable(g.ttr for g in parts))
        else:
            ttd, ttr = sorted(self.ttd), sorted(self.ttr)
        self.decided, self.resumed = len(ttd), len(ttr)
        self.ttd_p = {p: _seconds_or_none(percentile(ttd, p)) for p in PERCENTILES}
        self.ttr_p = {p: _seconds_or_none(percentile(ttr, p)) for p in PERCENTILES}
        self.ttd, self.ttr = ttd, ttr  # sorted now; dropped by `dashboard` once merged
        return self

    @property
    def sla_rate(self) -> float | None:
        return self.sla_breached / self.sla_total if self.sla_total else None


def _seconds_or_none(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


@dataclass
class Dashboard:
    filters: Filters
    total: Group
    by_type: list[Group]
    by_policy: list[Group]
    by_role: list[Group]
    by_week: list[Group]
    days: list[dict]  # day, requests, resolved, depth (pending at the end of the day)
    pending: int
    overdue: int  # breached and still pending now
    breaching: list[Checkpoint]
    escalations: list[Checkpoint]
    refreshed_at: dt.datetime | None


def _week(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _type_key(agent_id: int, kind: str, tool: str) -> tuple:
    """(agent, "", tool) for approvals with a tool, (agent, kind, "") otherwise."""
    if kind == Checkpoint.Kind.APPROVAL and tool:
        return (agent_id, "", tool)
    return (agent_id, kind, "")


def _sums(rows: QuerySet[OversightRollup], *by: str) -> list[tuple[tuple, dict[str, int]]]:
    """The counters summed in SQL, grouped by `by`."""
    grouped = rows.values(*by).annotate(**{f"s_{c}": Sum(c) for c in COUNTS}).order_by()
    return [(tuple(r[b] for b in by), {c: r[f"s_{c}"] for c in COUNTS}) for r in grouped]


def _rolled_up(filters: Filters) -> dict[str, Any]:
    """The period's figures from its rollup rows: counts summed in SQL (one GROUP BY per
    breakdown), durations merged in Python from the same rows (one read, arrays only), the
    queue depth before the period in one sum."""
    q = filters.rollup_q()
    rows = OversightRollup.objects.filter(q, day__gte=filters.start, day__lte=filters.end)
    total = Group("all")
    by_type: dict[tuple, Group] = {}
    by_policy: dict[Any, Group] = {}
    by_role: dict[str, Group] = {}
    by_week: dict[dt.date, Group] = {}
    per_day: dict[dt.date, dict[str, int]] = {}

    def group(index: dict, key: Any, label: str = "") -> Group:
        if key not in index:
            index[key] = Group(key, label=label)
        return index[key]

    for (day,), sums in _sums(rows, "day"):
        per_day[day] = sums
        total.count(sums)
        week = _week(day)
        group(by_week, week, f"week of {week:%Y-%m-%d}").count(sums)
    for (agent_id, kind, tool), sums in _sums(rows, "agent_id", "kind", "tool"):
        group(by_type, _type_key(agent_id, kind, tool)).count(sums)
    for (policy_id,), sums in _sums(rows, "policy_id"):
        group(by_policy, policy_id).count(sums)
    for (role,), sums in _sums(rows, "role"):
        group(by_role, role, role).count(sums)
    durations = rows.filter(resolved__gt=0).values_list(
        "day", "agent_id", "kind", "tool", "policy_id", "role", "ttd_ms", "ttr_ms"
    )
    # Durations go to cells (type, policy, role, week), each sorted once; every breakdown then
    # merges a few long sorted runs (which Python's sort does in near-linear time) instead of
    # sorting every value again: the 90-day page's main cost at 100,000 requests.
    cells: dict[tuple, tuple[list[int], list[int]]] = {}
    for day, agent_id, kind, tool, policy_id, role, ttd, ttr in durations.iterator(chunk_size=2000):
        key = (_type_key(agent_id, kind, tool), policy_id, role, _week(day))
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = ([], [])
        if ttd:
            cell[0].extend(map(int, ttd.split(",")))
        if ttr:
            cell[1].extend(map(int, ttr.split(",")))
    for (type_key, policy_id, role, week), (ttd, ttr) in cells.items():
        ttd.sort()
        ttr.sort()
        for g in (by_type[type_key], by_policy[policy_id], by_role[role], by_week[week]):
            g.ttd.extend(ttd)
            g.ttr.extend(ttr)
    before = OversightRollup.objects.filter(q, day__lt=filters.start).aggregate(
        made=Sum("requests"), ended=Sum("resolved")
    )
    depth = (before["made"] or 0) - (before["ended"] or 0)
    days = []
    day = filters.start
    while day <= filters.end:
        sums = per_day.get(day) or {"requests": 0, "resolved": 0}
        made, ended = sums["requests"] or 0, sums["resolved"] or 0
        depth += made - ended
        days.append({"day": day, "requests": made, "resolved": ended, "depth": max(depth, 0)})
        day += dt.timedelta(days=1)
    policies = dict(
        Policy.objects.filter(pk__in=[k for k in by_policy if k]).values_list("pk", "name")
    )
    for key, g in by_policy.items():
        g.label = policies.get(key, f"policy #{key}") if key else "no policy (default route)"
    types = [g.finish() for g in by_type.values()]
    total.finish(types)
    groups = [*types, total, *by_policy.values(), *by_role.values(), *by_week.values()]
    for g in groups[len(types) + 1 :]:
        g.finish()
    for g in groups:
        g.ttd = g.ttr = []
    return {
        "total": total,
        "by_type": sorted(types, key=lambda g: -g.requests),
        "by_policy": sorted(by_policy.values(), key=lambda g: -g.requests),
        "by_role": sorted(by_role.values(), key=lambda g: g.label),
        "by_week": [by_week[k] for k in sorted(by_week)],
        "days": days,
    }


def figures(filters: Filters) -> dict[str, Any]:
    """The rolled-up figures of a period, from the cache until the sweep changes the rollups
    (they cannot change before)."""
    _refreshed, changed = rollups_state()
    key = (
        "hitl:oversight:"
        + hashlib.sha256(repr((sorted(vars(filters).items()), changed)).encode()).hexdigest()
    )
    found = cache.get(key)
    if found is None:
        found = _rolled_up(filters)
        cache.set(key, found, timeout=3600)
    return found


def dashboard(filters: Filters, now: dt.datetime | None = None, *, items: int = 25) -> Dashboard:
    """Everything the dashboard shows for a period and filters: the rolled-up figures (kept in
    the cache until the sweep refreshes the rollups: they cannot change before) and a few
    small live queries (pending now, breaching and escalated items). Type groups are keyed
    (agent_id, kind, tool); the caller names the agents (approvals does not read agents')."""
    now = now or timezone.now()
    refreshed, _changed = rollups_state()
    # The status as an SQL literal: SQLite then reads the small pending set through its
    # partial indexes instead of every row of the period (see review.queries).
    live = only_pending(Checkpoint.with_drills.filter(filters.checkpoint_q()))
    period = Q(created_at__gte=filters.start_at, created_at__lt=filters.end_at)
    # Breached implies due by now, and due after the request: bounds for the SLA index.
    breaching = list(
        breached(
            Checkpoint.with_drills.filter(
                filters.checkpoint_q(),
                period,
                sla_due_at__gte=filters.start_at,
                sla_due_at__lte=now,
            ),
            now,
        )
        .select_related("agent", "policy")
        .order_by("-sla_due_at")[:items]
    )
    escalations = list(
        Checkpoint.with_drills.filter(filters.checkpoint_q(), period, escalated=True)
        .select_related("agent")
        .order_by("-created_at")[:items]
    )
    return Dashboard(
        filters=filters,
        **figures(filters),
        pending=live.filter(period).count(),
        overdue=breached(live.filter(period, sla_due_at__lte=now), now).count(),
        breaching=breaching,
        escalations=escalations,
        refreshed_at=refreshed,
    )


# --- reviewers ------------------------------------------------------------------------------


def with_first_view(qs: QuerySet[Decision]) -> QuerySet[Decision]:
    """Annotate `viewed_at`: when the voter first opened the checkpoint (one LEFT JOIN on the
    view's unique (checkpoint, user) key; None if they decided without opening it)."""
    return qs.annotate(
        own_view=FilteredRelation(
            "checkpoint__views", condition=Q(checkpoint__views__user=F("reviewer"))
        ),
        viewed_at=F("own_view__at"),
    )


@dataclass
class ReviewerRow:
    reviewer_id: int
    username: str
    role: str
    decisions: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    review_seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    untimed: int = 0
    active_days: set = field(default_factory=set)
    drills_seen: int = 0
    drills_caught: int = 0
    drills_missed: int = 0
    drills_edited: int = 0
    drill_catch_seconds: list[float] = field(default_factory=list)
    holding: int = 0
    median_review: float | None = None
    speed_ratio: float | None = None
    flag: str = ""

    @property
    def approval_rate(self) -> float | None:
        votes = self.outcomes["approve"] + self.outcomes["modify"] + self.outcomes["reject"]
        return (self.outcomes["approve"] + self.outcomes["modify"]) / votes if votes else None

    def rate(self, name: str) -> float | None:
        return self.outcomes[name] / self.decisions if self.decisions else None

    @property
    def per_day(self) -> float:
        return self.decisions / len(self.active_days) if self.active_days else 0.0


@dataclass
class ReviewerReport:
    rows: list[ReviewerRow]
    role_medians: dict[str, float | None]
    min_decisions: int
    approval_threshold: float
    speed_threshold: float


def reviewer_stats(
    start: dt.datetime, end: dt.datetime, *, role: str = "", now: dt.datetime | None = None
) -> ReviewerReport:
    """Per reviewer and role: decisions, outcome rates, median time from first opening the
    review page to deciding, load, drills, and the rubber-stamp flag: approving nearly
    everything (≥ HITL_RUBBER_STAMP_APPROVAL_RATE of at least HITL_RUBBER_STAMP_MIN_DECISIONS
    votes) in a median time far below (≤ HITL_RUBBER_STAMP_SPEED_RATIO of) what the role's
    reviewers take for the same type and risk of request."""
    now = now or timezone.now()
    qs = with_first_view(Decision.objects.filter(created_at__gte=start, created_at__lt=end))
    if role:
        qs = qs.filter(role=role)
    votes = list(
        qs.values_list(
            "reviewer_id",
            "reviewer__username",
            "role",
            "outcome",
            "created_at",
            "viewed_at",
            "checkpoint__agent_id",
            "checkpoint__kind",
            "checkpoint__tool",
            "checkpoint__risk",
            "checkpoint__drill_id",
        ).iterator(chunk_size=5000)
    )
    # What is usual: per (role, type, risk) of real requests, the median review time of the
    # *other* reviewers (a prolific rubber stamp must not set their own yardstick).
    usual: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    for rid, _u, r, _o, at, viewed, agent, kind, tool, risk, drill in votes:
        if viewed is not None and drill is None:
            usual[(r, agent, kind, tool, risk)].append((rid, (at - viewed).total_seconds()))
    baseline: dict[tuple, float | None] = {}

    def others_median(key: tuple, rid: int) -> float | None:
        if (key, rid) not in baseline:
            others = [t for who, t in usual.get(key, ()) if who != rid]
            baseline[(key, rid)] = statistics.median(others) if others else None
        return baseline[(key, rid)]

    role_all: dict[str, list[float]] = defaultdict(list)
    for (r, *_k), values in usual.items():
        role_all[r].extend(t for _who, t in values)
    rows: dict[tuple, ReviewerRow] = {}
    for vote in votes:
        rid, username, r, out, at, viewed, agent, kind, tool, risk, drill = vote
        row = rows.setdefault((rid, r), ReviewerRow(rid, username, r))
        if drill is not None:
            row.drills_seen += 1
            if out == Decision.Outcome.REJECT:
                row.drills_caught += 1
                if viewed is not None:
                    row.drill_catch_seconds.append((at - viewed).total_seconds())
            elif out == Decision.Outcome.MODIFY:
                row.drills_edited += 1
            elif out == Decision.Outcome.APPROVE:
                row.drills_missed += 1
            continue
        row.decisions += 1
        row.outcomes[out] += 1
        row.active_days.add(_utc_day(at))
        if viewed is None:
            row.untimed += 1
            continue
        took = (at - viewed).total_seconds()
        row.review_seconds.append(took)
        usual_time = others_median((r, agent, kind, tool, risk), rid)
        if usual_time:
            row.ratios.append(took / usual_time)
    holding = dict(
        Checkpoint.with_drills.filter(status=Status.PENDING, claim_expires_at__gt=now)
        .values("claimed_by")
        .annotate(n=Count("id"))
        .values_list("claimed_by", "n")
    )
    min_n = settings.HITL_RUBBER_STAMP_MIN_DECISIONS
    rate_min = settings.HITL_RUBBER_STAMP_APPROVAL_RATE
    speed_max = settings.HITL_RUBBER_STAMP_SPEED_RATIO
    for row in rows.values():
        row.outcomes = defaultdict(int, row.outcomes)
        row.holding = holding.get(row.reviewer_id, 0)
        if row.review_seconds:
            row.median_review = round(statistics.median(row.review_seconds), 1)
        if row.ratios:
            row.speed_ratio = round(statistics.median(row.ratios), 3)
        row.flag = _rubber_stamp(row, min_n, rate_min, speed_max)
    return ReviewerReport(
        rows=sorted(rows.values(), key=lambda r: (r.role, -r.decisions, r.username)),
        role_medians={
            r: round(statistics.median(v), 1) if v else None for r, v in sorted(role_all.items())
        },
        min_decisions=min_n,
        approval_threshold=rate_min,
        speed_threshold=speed_max,
    )


def _rubber_stamp(row: ReviewerRow, min_n: int, rate_min: float, speed_max: float) -> str:
    """Why this reviewer looks like a rubber stamp, in words; "" if they do not."""
    rate = row.approval_rate
    if row.decisions < min_n or rate is None or rate < rate_min:
        return ""
    if row.speed_ratio is None or len(row.ratios) < min(min_n, 5) or row.speed_ratio > speed_max:
        return ""
    why = (
        f"approved {rate:.0%} of {row.decisions} in a median {row.median_review:g} s, "
        f"{row.speed_ratio:.0%} of the usual time for the same requests in {row.role}"
    )
    if row.drills_missed:
        why += f"; missed {row.drills_missed} of {row.drills_seen} drill(s)"
    return why
