"""Routing: what happens to a request (route it to reviewers, or decide it automatically).

Routing reads only *published* versions, compiled once per publication and cached per
process (`RoutingTable`). Every transaction that changes what routes bumps the
`PolicyGeneration` row, which each process compares with its table at every request:
a publication takes effect everywhere at the next request, a draft never routes.

Order: an auto-reject policy that matches always decides (deny wins over allow, whatever
the priorities); otherwise the first matching live policy by priority (then id) does; no
match: the default role and timeout. A standing rule is passed over unless the request is
within its role's authority (`within_authority`). Shadow policies never decide: every one
that matches is recorded (`ShadowMatch`) with what it would have done.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from approvals.models import (
    AUTOMATIC_OUTCOMES,
    Checkpoint,
    ExpiryAction,
    Policy,
    PolicyGeneration,
    PolicyOutcome,
    PolicyVersion,
    ShadowMatch,
)
from approvals.policies.conditions import (
    Condition,
    ConditionError,
    Facts,
    compile_condition,
)
from approvals.policies.validation import escalation_ladder
from approvals.rules import (
    is_review_role,
    step_up_risk,
)
from core.exceptions import InvalidInput

log = logging.getLogger(__name__)

GLOB_CHARACTERS = frozenset("*?[")


@dataclass
class Route:
    stages: list[dict]
    timeout_seconds: int
    expiry_action: str
    escalation_role: str = ""
    escalation_timeout_seconds: int = 1800
    # [{"role", "timeout_seconds"}, ...]: taken one step per deadline, then reject.
    escalation_ladder: list[dict] = field(default_factory=list)
    sla_seconds: int | None = None
    policy: Policy | None = None  # the policy as it is in `version`
    version: PolicyVersion | None = None
    outcome: str = PolicyOutcome.ROUTE
    reason: str = ""
    condition: str = ""
    shadow: list[tuple[PolicyVersion, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def roles(self) -> list[str]:
        return [s["role"] for s in self.stages]

    @property
    def automatic(self) -> bool:
        return self.outcome in AUTOMATIC_OUTCOMES


# --- the routing table: published versions, compiled once per publication ----------------------


def _exact(pattern: str) -> str | None:
    """The value a glob matches if it matches only one (an index key), else None."""
    if pattern and not GLOB_CHARACTERS & set(pattern):
        return pattern
    return None


@dataclass
class Entry:
    order: int
    version: PolicyVersion
    policy: Policy  # as in the version
    condition: Condition | None
    broken: bool = False  # the condition no longer compiles: matches nothing

    @property
    def outcome(self) -> str:
        return self.policy.outcome

    def matches(self, *, agent: str, tool: str, kind: str, risk: str, facts: Facts, now) -> bool:
        p = self.policy
        if self.broken or (p.expires_at is not None and p.expires_at <= now):
            return False
        if p.outcome == PolicyOutcome.AUTO_APPROVE and kind == Checkpoint.Kind.QUESTION:
            return False  # a question needs an answer, which no policy gives
        if not p.matches(agent_slug=agent, tool=tool, kind=kind, risk=risk):
            return False
        if self.condition is None:
            return True
        return self.condition.evaluate(facts, label=self.version.label)


class _Index:
    """Entries bucketed by exact tool and agent (None: any), so a request is checked only
    against the policies that can match it; candidates come out in priority order."""

    def __init__(self, entries: Iterable[Entry]):
        self.buckets: dict[tuple[str | None, str | None], list[Entry]] = {}
        for e in entries:
            key = (_exact(e.policy.match_tool), _exact(e.policy.match_agent))
            self.buckets.setdefault(key, []).append(e)

    def candidates(self, tool: str, agent: str) -> Iterator[Entry]:
        keys = {(None, None), (tool, None), (None, agent), (tool, agent)}
        lists = [self.buckets[k] for k in keys if k in self.buckets]
        if len(lists) == 1:
            return iter(lists[0])
        return heapq.merge(*lists, key=lambda e: e.order)

    def __len__(self) -> int:
        return sum(len(v) for v in self.buckets.values())


class RoutingTable:
    def __init__(
        self,
        stamp: Any,
        versions: list[PolicyVersion],
        compiled: dict[str, Condition | None] | None = None,
    ):
        """`compiled`: the conditions an earlier table compiled, by source (a published
        version never changes): a publication compiles only what is new, not every live
        policy again. The table keeps those its versions use (`self.compiled`)."""
        self.stamp = stamp
        self.compiled: dict[str, Condition | None] = {}
        earlier = compiled or {}
        entries = []
        for order, version in enumerate(
            sorted(versions, key=lambda v: (v.get("priority", 100), v.policy_id))
        ):
            policy = version.as_policy()
            condition, broken = None, False
            source = (policy.condition or "").strip()
            if source:
                if source in self.compiled or source in earlier:
                    condition = self.compiled.get(source, earlier.get(source))
                else:
                    try:
                        condition = compile_condition(source)
                    except ConditionError as exc:
                        log.error("published %s does not compile: %s", version.label, exc)
                        condition = None
                    if condition is not None and not condition.admitted:
                        log.error(
                            "published %s is over the condition limits (evaluated only on "
                            "requests within them): %s",
                            version.label,
                            condition.cost.problem,
                        )
                self.compiled[source] = condition
                broken = condition is None  # no longer compiles: matches nothing
            entries.append(Entry(order, version, policy, condition, broken))
        deciding = [e for e in entries if not e.policy.shadow]
        self.rejects = _Index(e for e in deciding if e.outcome == PolicyOutcome.AUTO_REJECT)
        self.others = _Index(e for e in deciding if e.outcome != PolicyOutcome.AUTO_REJECT)
        self.shadows = _Index(e for e in entries if e.policy.shadow)
        self.size = len(entries)

    def decide(self, *, agent, tool, kind, risk, facts, now) -> tuple[Entry | None, list[Entry]]:
        """The entry that decides (deny first, then by priority; a standing rule only within
        its role's authority, `within_authority`) and the shadow entries that match."""
        args = {"agent": agent, "tool": tool, "kind": kind, "risk": risk, "facts": facts}
        hint = facts.values.get("role_hint") or ""
        winner = next(
            (e for e in self.rejects.candidates(tool, agent) if e.matches(**args, now=now)), None
        )
        base: Entry | None = None
        if winner is None:
            standing, base = self._standing_then_base(tool, agent, args, now)
            winner = next((e for e in standing if within_authority(e, base, hint, risk)), base)
        shadows = [e for e in self.shadows.candidates(tool, agent) if e.matches(**args, now=now)]
        if any(e.policy.standing_role for e in shadows):
            # What a shadow standing rule would have done: the same test, against the route
            # the request really gets without standing rules (a rejection: never).
            if winner is not None and winner.outcome == PolicyOutcome.AUTO_REJECT:
                shadows = [e for e in shadows if not e.policy.standing_role]
            else:
                shadows = [
                    e
                    for e in shadows
                    if not e.policy.standing_role or within_authority(e, base, hint, risk)
                ]
        return winner, shadows

    def matching(self, *, agent, tool, kind, risk, facts, now) -> Entry | None:
        """The first entry whose match fields and condition hold, whatever its authority
        (replay: can this version change what happens to the request at all?)."""
        args = {"agent": agent, "tool": tool, "kind": kind, "risk": risk, "facts": facts}
        for index in (self.rejects, self.others, self.shadows):
            for e in index.candidates(tool, agent):
                if e.matches(**args, now=now):
                    return e
        return None

    def _standing_then_base(self, tool, agent, args, now) -> tuple[list[Entry], Entry | None]:
        """The standing rules that match before the first other matching entry (in priority
        order), and that entry (None: the default route)."""
        standing = []
        for e in self.others.candidates(tool, agent):
            if e.matches(**args, now=now):
                if not e.policy.standing_role:
                    return standing, e
                standing.append(e)
        return standing, None


def within_authority(rule: Entry, base: Entry | None, role_hint: str = "", risk: str = "") -> bool:
    """A standing rule may approve only what one reviewer of its role could have approved
    alone: the route the request gets without any standing rule (`base`, with the agent's
    role hint as routing would add it) is exactly one stage of the rule's role with one
    approval. Two reviewers of `ops` cannot approve, by a rule, what policy sends to `dba`
    or to two approvers. Nor a request that needs a step-up (HITL_STEP_UP_RISK and above):
    a person would need a fresh second factor to approve it."""
    if risk and step_up_risk(risk):
        return False
    route = add_role_hint(route_for(base), role_hint)
    return route.outcome == PolicyOutcome.ROUTE and route.stages == [
        {"role": rule.policy.standing_role, "approvals": 1}
    ]


_table: RoutingTable | None = None
_table_lock = threading.Lock()


_STAMP_SQL = None


def _current_stamp() -> Any:
    """The generation row, read with one plain statement (this runs on every request: the
    ORM's query building would cost more than the query)."""
    global _STAMP_SQL
    if _STAMP_SQL is None:
        q = connection.ops.quote_name
        _STAMP_SQL = (
            f"SELECT {q('value')}, {q('stamp')} FROM {q(PolicyGeneration._meta.db_table)} "
            f"WHERE {q('id')} = 1"
        )
    with connection.cursor() as cursor:
        cursor.execute(_STAMP_SQL)
        row = cursor.fetchone()
    return tuple(row) if row else (0, None)


def live_versions() -> list[PolicyVersion]:
    """The published versions of active policies (what routes)."""
    versions = PolicyVersion.objects.filter(
        pk__in=Policy.objects.filter(live_version__isnull=False).values("live_version")
    ).select_related("policy")
    return [v for v in versions if v.get("active", True)]


def routing_table() -> RoutingTable:
    """This process's compiled table, rebuilt when a publication moved the generation."""
    global _table
    stamp = _current_stamp()
    table = _table
    if table is not None and table.stamp == stamp:
        return table
    with _table_lock:
        if _table is not None and _table.stamp == stamp:
            return _table
        table = RoutingTable(stamp, live_versions(), _table.compiled if _table else None)
        _table = table
    return table


def table_changed() -> None:
    """Inside the transaction of a change to what routes: move the generation (and its
    random stamp, so a table compiled inside a transaction that rolled back is never
    mistaken for a later one)."""
    updated = PolicyGeneration.objects.filter(pk=1).update(value=F("value") + 1, stamp=uuid.uuid4())
    if not updated:
        PolicyGeneration.objects.update_or_create(
            pk=1, defaults={"value": 1, "stamp": uuid.uuid4()}
        )


def route(
    *,
    agent_slug: str,
    tool: str,
    kind: str,
    risk: str,
    role_hint: str = "",
    facts: Facts,
    now: dt.datetime | None = None,
    table: RoutingTable | None = None,
) -> Route:
    """What happens to a request (see the module docstring). A role hint must name a review
    role (else InvalidInput); if the deciding policy honours hints, it adds a stage (never
    replaces one)."""
    if role_hint and not is_review_role(role_hint):
        raise InvalidInput(f"{role_hint!r} is not a review role.", "role_hint")
    now = now or timezone.now()
    table = table or routing_table()
    entry, shadows = table.decide(
        agent=agent_slug, tool=tool or "", kind=kind, risk=risk, facts=facts, now=now
    )
    result = add_role_hint(route_for(entry), role_hint)
    result.shadow = [(e.version, e.outcome) for e in shadows]
    result.notes.extend(facts.skipped)
    return result


def add_role_hint(result: Route, role_hint: str) -> Route:
    """A hint can only add review, never replace what policy requires: if the deciding
    policy (or, with none, HITL_HONOUR_ROLE_HINTS) honours hints, the hinted role is an extra
    stage. Automatic outcomes ignore hints."""
    if result.automatic or not role_hint:
        return result
    policy = result.policy
    honour = policy.honour_role_hints if policy is not None else settings.HITL_HONOUR_ROLE_HINTS
    if not honour:
        result.notes.append(f"role hint {role_hint!r} ignored: the policy does not honour hints")
    elif role_hint not in result.roles:
        result.stages.append({"role": role_hint, "approvals": 1})
        result.notes.append(f"role hint {role_hint!r} added as an extra stage")
    return result


def _default_stages() -> list[dict]:
    return [{"role": settings.HITL_DEFAULT_ROLE, "approvals": 1}]


def route_for(entry: Entry | None) -> Route:
    """The route a matching entry gives (None: the default route)."""
    if entry is None:
        return Route(
            stages=_default_stages(),
            timeout_seconds=settings.HITL_DEFAULT_TIMEOUT,
            expiry_action=ExpiryAction.REJECT,
            notes=["no policy matched: default role and timeout"],
        )
    policy, version = entry.policy, entry.version
    stages = [{"role": s["role"], "approvals": int(s.get("approvals", 1))} for s in policy.stages]
    verb = {
        PolicyOutcome.AUTO_APPROVE: "approved automatically",
        PolicyOutcome.AUTO_REJECT: "rejected automatically",
    }.get(policy.outcome, "routed")
    ladder = escalation_ladder(policy)
    return Route(
        stages=stages or _default_stages(),
        timeout_seconds=policy.timeout_seconds or settings.HITL_DEFAULT_TIMEOUT,
        expiry_action=policy.expiry_action,
        escalation_role=ladder[0]["role"] if ladder else policy.escalation_role,
        escalation_timeout_seconds=(
            ladder[0]["timeout_seconds"] if ladder else policy.escalation_timeout_seconds
        ),
        escalation_ladder=ladder,
        sla_seconds=policy.sla_seconds,
        policy=policy,
        version=version,
        outcome=policy.outcome,
        reason=policy.reason,
        condition=policy.condition,
        notes=[f"{verb} by policy {version.label}"],
    )


def shadow_record(cp: Checkpoint, shadow: list[tuple[PolicyVersion, str]]) -> None:
    """Inside the request's transaction: what each matching shadow policy would have done."""
    if shadow:
        ShadowMatch.objects.bulk_create(
            [ShadowMatch(version=v, checkpoint=cp, would=would) for v, would in shadow]
        )
