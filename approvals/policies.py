"""Policies: routing a request to who must review it, how many approvals, until when.
(Later: validated, versioned, audited policy changes.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError

from approvals import audit
from approvals.models import AuditVerb, ExpiryAction, Policy
from approvals.rules import is_review_role, review_role_names
from core.exceptions import InvalidInput


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
    policy: Policy | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def roles(self) -> list[str]:
        return [s["role"] for s in self.stages]


def validate_policy(policy: Policy) -> None:
    """Field errors (django ValidationError) for a policy that could not route: stages must
    be a non-empty list of {"role": <review role>, "approvals": <n ≥ 1>}; an escalation needs
    a review role to escalate to."""
    errors: dict[str, list[str]] = {}
    roles = review_role_names()
    known = ", ".join(sorted(roles)) or "none yet: grant a group the decide permission"
    stages = policy.stages
    if not isinstance(stages, list) or not stages:
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
            if stage.get("role") not in roles:
                role = stage.get("role")
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
        if step["role"] not in roles:
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


def route(*, agent_slug: str, tool: str, kind: str, risk: str, role_hint: str = "") -> Route:
    """The first active policy (by priority, then id) that matches decides; no match: the
    default role and timeout. A role hint must name a review role (else InvalidInput); if the
    policy honours hints, it adds a stage (never replaces one)."""
    if role_hint and not is_review_role(role_hint):
        raise InvalidInput(f"{role_hint!r} is not a review role.", "role_hint")
    policy = next(
        (
            p
            for p in Policy.objects.filter(active=True).order_by("priority", "id")
            if p.matches(agent_slug=agent_slug, tool=tool, kind=kind, risk=risk) and p.stages
        ),
        None,
    )
    if policy is not None:
        ladder = escalation_ladder(policy)
        result = Route(
            stages=[
                {"role": s["role"], "approvals": int(s.get("approvals", 1))} for s in policy.stages
            ],
            timeout_seconds=policy.timeout_seconds or settings.HITL_DEFAULT_TIMEOUT,
            expiry_action=policy.expiry_action,
            escalation_role=ladder[0]["role"] if ladder else policy.escalation_role,
            escalation_timeout_seconds=(
                ladder[0]["timeout_seconds"] if ladder else policy.escalation_timeout_seconds
            ),
            escalation_ladder=ladder,
            sla_seconds=policy.sla_seconds,
            policy=policy,
            notes=[f"routed by policy {policy.name!r}"],
        )
    else:
        result = Route(
            stages=[{"role": settings.HITL_DEFAULT_ROLE, "approvals": 1}],
            timeout_seconds=settings.HITL_DEFAULT_TIMEOUT,
            expiry_action=ExpiryAction.REJECT,
            notes=["no policy matched: default role and timeout"],
        )
    # A hint can only add review, never replace what policy requires.
    honour = policy.honour_role_hints if policy is not None else settings.HITL_HONOUR_ROLE_HINTS
    if role_hint and not honour:
        result.notes.append(f"role hint {role_hint!r} ignored: the policy does not honour hints")
    elif role_hint and role_hint not in result.roles:
        result.stages.append({"role": role_hint, "approvals": 1})
        result.notes.append(f"role hint {role_hint!r} added as an extra stage")
    return result


# --- changes: validated and audited ---------------------------------------------------------------

POLICY_FIELDS = [f.name for f in Policy._meta.concrete_fields if f.name != "id"]


def policy_record(policy: Policy, before: dict | None, *, actor: audit.Actor) -> None:
    """Audit a policy that was just created (`before` None) or changed: every changed field's
    old and new value."""
    after = audit.snapshot(policy, POLICY_FIELDS)
    if before is None:
        audit.record(actor, AuditVerb.POLICY_CREATED, policy, {"values": after})
    elif diff := audit.changes(before, after):
        audit.record(actor, AuditVerb.POLICY_UPDATED, policy, {"changes": diff})


def policy_save(policy: Policy, *, actor: audit.Actor) -> Policy:
    """Create or change a policy: validated (ValidationError with field errors), saved and
    audited in one transaction. Pending checkpoints keep the routing they were given (it is
    copied into them)."""
    validate_policy(policy)
    with audit.atomic():
        stored = Policy.objects.filter(pk=policy.pk).first() if policy.pk else None
        before = audit.snapshot(stored, POLICY_FIELDS) if stored is not None else None
        policy.save()
        policy_record(policy, before, actor=actor)
    return policy


def policy_deleted(target: tuple, before: dict, *, actor: audit.Actor) -> None:
    audit.record(actor, AuditVerb.POLICY_DELETED, target, {"values": before})
