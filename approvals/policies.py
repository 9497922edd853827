"""Policies: what happens to a request (route it to reviewers, or decide it automatically),
and every change to a policy (versions, draft → publish, roll back, revoke), audited.

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
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from approvals.conditions import (
    Condition,
    ConditionError,
    Facts,
    check_condition,
    compile_condition,
    suggest_condition,
)
from approvals.models import (
    AUTOMATIC_OUTCOMES,
    RISK_ORDER,
    Checkpoint,
    ExpiryAction,
    Policy,
    PolicyGeneration,
    PolicyOutcome,
    PolicyVersion,
)
from approvals.rules import is_review_role, review_role_names, step_up_risk
from audit import events as audit
from audit.models import AuditEvent, AuditVerb
from core.canonical import normalize
from core.exceptions import Conflict, InvalidInput, NotAllowed
from core.roles import is_manager

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


# --- validation --------------------------------------------------------------------------------


def validate_policy(policy: Policy) -> None:
    """Field errors (django ValidationError) for a policy that could not route or decide:
    stages must be a non-empty list of {"role": <review role>, "approvals": <n ≥ 1>} (a
    routing policy needs them; automatic ones may leave them empty); an escalation needs a
    review role; the condition must compile; an automatic rejection needs a reason; shadow
    mode is for automatic outcomes; a standing rule approves, expires, and needs a condition."""
    errors: dict[str, list[str]] = {}
    roles = review_role_names()
    known = ", ".join(sorted(roles)) or "none yet: grant a group the decide permission"
    stages = policy.stages
    automatic = policy.outcome in AUTOMATIC_OUTCOMES
    if policy.outcome not in PolicyOutcome.values:
        errors["outcome"] = [f"One of: {', '.join(PolicyOutcome.values)}."]
    if not isinstance(stages, list) or (not stages and not automatic):
        errors["stages"] = ['A non-empty list of stages, e.g. [{"role": "ops", "approvals": 1}].']
    else:
        for i, stage in enumerate(stages, 1):
            if not isinstance(stage, dict) or set(stage) - {"role", "approvals"}:
                errors.setdefault("stages", []).append(
                    f'Stage {i}: an object with "role" and optionally "approvals", nothing else.'
                )
                continue
            approvals = stage.get("approvals", 1)
            if type(approvals) is not int or not 1 <= approvals <= 20:
                errors.setdefault("stages", []).append(
                    f"Stage {i}: approvals must be a whole number from 1 to 20."
                )
            role = stage.get("role")
            if not isinstance(role, str):
                errors.setdefault("stages", []).append(
                    f'Stage {i}: "role" is the name of one review role, e.g. "ops".'
                )
            elif role not in roles:
                errors.setdefault("stages", []).append(
                    f"Stage {i}: {role!r} is not a review role (review roles: {known})."
                )
    ladder = policy.escalation_ladder
    if ladder:
        errors.update(_ladder_errors(ladder, roles, known))
        if policy.escalation_role:
            errors["escalation_role"] = [
                "Leave this empty with a ladder: the ladder's first step is the escalation."
            ]
        if policy.expiry_action != ExpiryAction.ESCALATE:
            errors["expiry_action"] = ["Choose “Escalate” to use the escalation ladder."]
    elif policy.expiry_action == ExpiryAction.ESCALATE and not policy.escalation_role:
        errors["escalation_role"] = [
            "Escalation needs a review role to escalate to (or an escalation ladder)."
        ]
    elif policy.escalation_role and policy.escalation_role not in roles:
        errors["escalation_role"] = [
            f"{policy.escalation_role!r} is not a review role (review roles: {known})."
        ]
    if (policy.condition or "").strip():
        try:
            check_condition(policy.condition)
        except ConditionError as exc:
            errors["condition"] = [str(exc)]
    if policy.outcome == PolicyOutcome.AUTO_REJECT and not (policy.reason or "").strip():
        errors["reason"] = ["An automatic rejection needs a reason the agent can act on."]
    if policy.shadow and not automatic:
        errors["shadow"] = ["Shadow mode is for automatic outcomes (approve or reject)."]
    if policy.standing_role:
        if policy.outcome != PolicyOutcome.AUTO_APPROVE:
            errors["outcome"] = ["A standing rule approves automatically."]
        if not (policy.condition or "").strip():
            errors.setdefault("condition", []).append("A standing rule needs a condition.")
        if policy.expires_at is None:
            errors["expires_at"] = ["A standing rule expires: give it an end."]
        if policy.standing_role not in roles:
            errors["standing_role"] = [f"{policy.standing_role!r} is not a review role."]
    if errors:
        raise ValidationError(errors)


MAX_LADDER_STEPS = 10


def _ladder_errors(ladder, roles: set[str], known: str) -> dict[str, list[str]]:
    """An escalation ladder is a list of up to 10 {"role": <review role>, "timeout_seconds":
    <1 s .. 30 days>}."""
    if not isinstance(ladder, list) or len(ladder) > MAX_LADDER_STEPS:
        return {
            "escalation_ladder": [
                f'A list of up to {MAX_LADDER_STEPS} steps, e.g. [{{"role": "ops-leads", '
                '"timeout_seconds": 7200}].'
            ]
        }
    problems = []
    for i, step in enumerate(ladder, 1):
        if not isinstance(step, dict) or set(step) != {"role", "timeout_seconds"}:
            problems.append(f'Step {i}: an object with "role" and "timeout_seconds", nothing else.')
            continue
        timeout = step["timeout_seconds"]
        if type(timeout) is not int or not 1 <= timeout <= 30 * 86400:
            problems.append(f"Step {i}: timeout_seconds must be a whole number from 1 to 2592000.")
        if not isinstance(step["role"], str):
            problems.append(f'Step {i}: "role" is the name of one review role, e.g. "ops-leads".')
        elif step["role"] not in roles:
            problems.append(
                f"Step {i}: {step['role']!r} is not a review role (review roles: {known})."
            )
    return {"escalation_ladder": problems} if problems else {}


def escalation_ladder(policy: Policy) -> list[dict]:
    """The steps a request routed by `policy` takes at its deadlines: the ladder, or today's
    one-step escalation (escalation role for the escalation timeout); none: it expires."""
    if policy.expiry_action != ExpiryAction.ESCALATE:
        return []
    if policy.escalation_ladder:
        return [
            {"role": s["role"], "timeout_seconds": int(s["timeout_seconds"])}
            for s in policy.escalation_ladder
        ]
    if policy.escalation_role:
        return [
            {"role": policy.escalation_role, "timeout_seconds": policy.escalation_timeout_seconds}
        ]
    return []


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


# --- changes: versions, validated and audited ---------------------------------------------------


def policy_values(policy: Policy) -> dict[str, Any]:
    """Every versioned field's value, as JSON (foreign keys as ids)."""
    return normalize({f.name: f.value_from_object(policy) for f in Policy.versioned_fields()})


def audited_fields() -> list[str]:
    return [f.name for f in Policy.versioned_fields()]


def latest_version(policy: Policy) -> PolicyVersion | None:
    return policy.versions.order_by("-number").first()


def _new_version(policy: Policy, by) -> PolicyVersion | None:
    """A new version if the policy differs from its latest one (None: nothing changed).
    The policy row is locked first, so two saves of the same policy at once number their
    versions one after the other (on PostgreSQL; SQLite has one writer at a time)."""
    list(Policy.objects.select_for_update().filter(pk=policy.pk).values_list("pk"))
    values = policy_values(policy)
    last = latest_version(policy)
    if last is not None and last.snapshot == values:
        return None
    return PolicyVersion.objects.create(
        policy=policy,
        number=(last.number + 1) if last else 1,
        snapshot=values,
        changes=audit.changes(last.snapshot, values) if last else {},
        created_by=by,
    )


def policy_record(
    policy: Policy, before: dict | None, *, actor: audit.Actor, by=None, verb=None
) -> PolicyVersion | None:
    """After a policy was created (`before` None) or changed (the admin's form or
    `policy_save`): its new version (a draft: it routes nothing until published) and the
    audit event with every changed field's old and new value."""
    with audit.atomic():
        version = _new_version(policy, by)
        after = audit.snapshot(policy, audited_fields())
        data: dict[str, Any] = {"version": version.number if version else None}
        if before is None:
            verb = verb or AuditVerb.POLICY_CREATED
            audit.record(actor, verb, policy, {"values": after, **data})
        elif diff := audit.changes(before, after):
            audit.record(actor, AuditVerb.POLICY_UPDATED, policy, {"changes": diff, **data})
    return version


def policy_save(policy: Policy, *, actor: audit.Actor, by=None) -> PolicyVersion | None:
    """Create or change a policy: validated (ValidationError with field errors), saved, a new
    draft version and its audit event, in one transaction. Publish the draft to make it
    route (`policy_publish`); pending checkpoints keep the version that routed them."""
    validate_policy(policy)
    with audit.atomic():
        stored = Policy.objects.filter(pk=policy.pk).first() if policy.pk else None
        before = audit.snapshot(stored, audited_fields()) if stored is not None else None
        policy.save()
        return policy_record(policy, before, actor=actor, by=by)


def policy_deleted(target: tuple, before: dict, *, actor: audit.Actor) -> None:
    table_changed()
    audit.record(actor, AuditVerb.POLICY_DELETED, target, {"values": before})


# --- who may publish, roll back and revoke -----------------------------------------------------


def _four_eyes_required(policy: Policy) -> bool:
    return policy.is_standing or settings.HITL_POLICY_FOUR_EYES


def authors(policy: Policy, version: PolicyVersion | None = None) -> set:
    """Who wrote `version` (and, for a standing rule, who proposed it): four-eyes."""
    ids = set()
    if version is not None and version.created_by_id:
        ids.add(version.created_by_id)
    if policy.is_standing:
        first = policy.versions.order_by("number").first()
        if first is not None and first.created_by_id:
            ids.add(first.created_by_id)
    return ids


def may_manage(user, policy: Policy) -> bool:
    """Publish, roll back or revoke this policy (four-eyes aside): holders of the publish
    permission; for a standing rule also the reviewers of its role and managers."""
    if not user or not user.is_authenticated or not user.is_active or not user.is_staff:
        return False
    if user.has_perm("approvals.publish_policy"):
        return True
    if policy.is_standing:
        from approvals.rules import user_review_roles

        return is_manager(user) or policy.standing_role in user_review_roles(user)
    return False


def may_replay(user, policy: Policy) -> bool:
    """Replay a version of this policy against history (it reads every recent request and
    runs the conditions on them): the policy's managers, who may publish it (`may_manage`)
    or edit it (the change permission), not everyone who may view it."""
    if may_manage(user, policy):
        return True
    return bool(
        user
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm("approvals.change_policy")
    )


def check_may_replay(user, policy: Policy) -> None:
    if not may_replay(user, policy):
        raise NotAllowed(f"{user.get_username()} may not replay {policy.name!r}")


def check_may_publish(user, policy: Policy, version: PolicyVersion) -> None:
    if not may_manage(user, policy):
        raise NotAllowed(f"{user.get_username()} may not publish {policy.name!r}")
    if _four_eyes_required(policy) and user.pk in authors(policy, version):
        raise NotAllowed(
            "Four-eyes: another reviewer of the role or a manager must publish what you wrote"
        )


def check_may_revoke(user, policy: Policy) -> None:
    if not (may_manage(user, policy) or user.pk in authors(policy)):
        raise NotAllowed(f"{user.get_username()} may not revoke {policy.name!r}")


# --- publish, roll back, revoke -----------------------------------------------------------------


class _AsPassed:
    def __repr__(self) -> str:
        return "AS_PASSED"


# `seen_live` default: the live version of the `policy` the caller passes, as it loaded it.
AS_PASSED: Any = _AsPassed()


def live_number(policy: Policy) -> int | None:
    """The number of the live version (None: nothing of it routes). Version rows never
    change, so reading it at any time gives the number of `policy.live_version_id`."""
    return policy.live_version.number if policy.live_version_id else None


def _last_move(policy: Policy) -> tuple[str, Any]:
    """Who last published, rolled back or revoked `policy`, and when (from its audit events,
    written in the transaction of the move)."""
    event = (
        AuditEvent.objects.filter(
            target_type=Policy._meta.label_lower,
            target_id=str(policy.pk),
            verb__in=(
                AuditVerb.POLICY_PUBLISHED,
                AuditVerb.POLICY_ROLLED_BACK,
                AuditVerb.POLICY_REVOKED,
            ),
        )
        .order_by("-pk")
        .values_list("actor_label", "at")
        .first()
    )
    return event or ("", None)


def _conflict(policy: Policy, message: str, status: str) -> Conflict:
    winner, at = _last_move(policy)
    return Conflict(message, status=status, winner=winner, at=at)


def _seen(policy: Policy, seen_live: Any) -> int | None:
    """The live version the caller decided on (read before the transaction)."""
    return live_number(policy) if seen_live is AS_PASSED else seen_live


def _locked(policy_id, seen_live: int | None) -> Policy:
    """The policy row, locked for the transaction, after checking that its live version is
    still the one the caller decided on (`seen_live`, a number; None: none was live).
    Conflict naming who moved it otherwise: of two moves at once, exactly one wins.

    Only the policy row is read with the lock. With a join (`select_related`), PostgreSQL
    returns, after waiting for the lock, the policy row as the winner committed it but the
    joined row as it was when the statement began (issue 18): what is checked is read by
    the statements after it."""
    locked = Policy.objects.select_for_update().get(pk=policy_id)
    live = live_number(locked)
    if live != seen_live:
        now = f"version {live} is live" if live is not None else "nothing of it is live"
        raise _conflict(
            locked,
            f"{locked.name!r} changed since you looked at it: {now}. Nothing was changed.",
            "published" if live is not None else "draft",
        )
    return locked


def _check_publishable(version: PolicyVersion) -> None:
    """A version is validated again when it goes live: a role may have lost its decide
    permission since it was written."""
    try:
        validate_policy(version.as_policy())
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        raise InvalidInput(f"{version.label} cannot go live: {problems}", "version") from None


def policy_publish(
    policy: Policy,
    *,
    user,
    version: PolicyVersion | None = None,
    note: str = "",
    actor: audit.Actor | None = None,
    seen_live: Any = AS_PASSED,
) -> PolicyVersion:
    """Make a version live (default: the latest, i.e. the draft). Publishing an earlier
    version than the live one is a roll back (audited as such). Takes effect at the next
    request in every process; checkpoints already pending keep the version that routed them.

    `seen_live`: the live version the caller decided on (its number, None for none; default:
    `policy`'s as passed). If another publication, roll back or revoke changed it since,
    Conflict naming who and when, and nothing changes.

    `user` None: code inside the portal (`seed_demo`, tests), acting as `actor`."""
    actor = actor or (audit.Actor.for_user(user) if user else audit.Actor.system())
    seen_live = _seen(policy, seen_live)
    if user is not None and not may_manage(user, policy):  # before the race: "not allowed"
        raise NotAllowed(f"{user.get_username()} may not publish {policy.name!r}")
    with audit.atomic():
        locked = _locked(policy.pk, seen_live)
        version = version or latest_version(locked)
        if version is None or version.policy_id != locked.pk:
            raise InvalidInput("No such version of this policy.", "version")
        previous = locked.live_version  # read after the lock: what this publication replaces
        if previous is not None and previous.pk == version.pk:
            raise _conflict(locked, f"{version.label} is already live", "published")
        if user is not None:
            check_may_publish(user, locked, version)
        _check_publishable(version)
        now = timezone.now()
        Policy.objects.filter(pk=locked.pk).update(
            live_version=version, published_at=now, published_by=user
        )
        table_changed()
        rollback = previous is not None and version.number < previous.number
        audit.record(
            actor,
            AuditVerb.POLICY_ROLLED_BACK if rollback else AuditVerb.POLICY_PUBLISHED,
            locked,
            {
                "version": version.number,
                "previous": previous.number if previous else None,
                "changes": audit.changes(previous.snapshot if previous else {}, version.snapshot),
                "note": note,
            },
        )
    policy.refresh_from_db()
    return version


def policy_rollback(
    policy: Policy, *, user, version: PolicyVersion, note: str = "", seen_live: Any = AS_PASSED
) -> None:
    """Make an earlier version live again (the drafts after it stay, unpublished). Checked
    against the live version the caller saw; `policy_publish` re-checks it under the lock."""
    live = _seen(policy, seen_live)
    if live is None or version.number >= live:
        raise InvalidInput("Roll back to a version before the live one.", "version")
    policy_publish(policy, user=user, version=version, note=note, seen_live=live)


def policy_revoke(policy: Policy, *, user, reason: str = "", seen_live: Any = AS_PASSED) -> None:
    """Stop a policy at once: nothing of it routes until a version is published again (a
    standing rule is revoked in one click). `seen_live` as for `policy_publish`."""
    seen_live = _seen(policy, seen_live)
    check_may_revoke(user, policy)  # before the race: "not allowed", not "changed meanwhile"
    with audit.atomic():
        locked = _locked(policy.pk, seen_live)
        check_may_revoke(user, locked)
        live = locked.live_version  # read after the lock
        if live is None:
            raise _conflict(locked, f"{locked.name!r} is not live", "draft")
        Policy.objects.filter(pk=locked.pk).update(live_version=None)
        table_changed()
        audit.record(
            audit.Actor.for_user(user),
            AuditVerb.POLICY_REVOKED,
            locked,
            {"version": live.number, "reason": reason},
        )
    policy.refresh_from_db()


# --- standing rules ("always allow"), proposed from a review page --------------------------------


def standing_rule_propose(
    cp: Checkpoint, user, *, condition: str, days: int, reason: str = ""
) -> Policy:
    """A reviewer of the checkpoint's role proposes to approve requests like this one
    automatically: a draft standing rule that expires after `days` and that another reviewer
    of the role or a manager must publish. InvalidInput (naming the field) for a bad
    condition or duration; NotAllowed for someone who may not review this checkpoint."""
    from approvals.rules import can_decide, four_eyes_excluded

    if not can_decide(user, cp) or four_eyes_excluded(user, cp):
        raise NotAllowed("Only a reviewer of this checkpoint's role may propose a standing rule")
    if cp.kind == Checkpoint.Kind.QUESTION:
        raise InvalidInput("A question cannot be approved automatically.", "condition")
    limit = settings.HITL_STANDING_RULE_MAX_DAYS
    if not 1 <= days <= limit:
        raise InvalidInput(f"A standing rule lasts 1 to {limit} days.", "days")
    tool = (cp.action or {}).get("tool") or cp.kind
    base = f"Always allow {tool} for {cp.agent.slug}"[:80]
    rule = Policy(
        name=base,
        description=f"Proposed by {user.get_username()} from “{cp.title}”.",
        priority=settings.HITL_STANDING_RULE_PRIORITY,
        condition=condition,
        outcome=PolicyOutcome.AUTO_APPROVE,
        reason=reason or f"standing rule proposed by {user.get_username()}",
        expires_at=timezone.now() + dt.timedelta(days=days),
        standing_role=cp.current_role,
        proposed_from=cp,
    )
    try:
        validate_policy(rule)
    except ValidationError as exc:
        field_name, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(" ".join(messages), field_name) from None
    with audit.atomic():
        _save_with_free_name(rule, base)
        policy_record(
            rule, None, actor=audit.Actor.for_user(user), by=user, verb=AuditVerb.POLICY_PROPOSED
        )
    return rule


def _save_with_free_name(rule: Policy, base: str) -> None:
    """Insert `rule` as `base`, or `base (2)`, `base (3)`, ...: the first name that is free.
    Two reviewers proposing at once may both see a name free; the unique index decides and
    the loser takes the next name (each try in a savepoint, so the transaction goes on)."""
    taken = set(Policy.objects.filter(name__startswith=base).values_list("name", flat=True))
    n = 1
    while True:
        rule.name = base if n == 1 else f"{base} ({n})"
        n += 1
        if rule.name in taken:
            continue
        try:
            with transaction.atomic():
                rule.save(force_insert=True)
            return
        except IntegrityError:
            if not Policy.objects.filter(name=rule.name).exists():
                raise  # another constraint: not ours to retry
            rule.pk = None


def standing_rule_condition(cp: Checkpoint) -> str:
    """What a standing rule proposed from `cp` starts from: requests like this one
    (`suggest_condition`) of at most its risk. The reviewer narrows it before proposing."""
    like = suggest_condition(agent_slug=cp.agent.slug, action=cp.action)
    return f"{like} && risk_level <= {RISK_ORDER.get(cp.risk, 1)}"


def shadow_record(cp: Checkpoint, shadow: list[tuple[PolicyVersion, str]]) -> None:
    """Inside the request's transaction: what each matching shadow policy would have done."""
    from approvals.models import ShadowMatch

    if shadow:
        ShadowMatch.objects.bulk_create(
            [ShadowMatch(version=v, checkpoint=cp, would=would) for v, would in shadow]
        )
