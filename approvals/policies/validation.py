"""What a policy must be to be saved: field errors for one that could not route or decide."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from approvals.models import (
    AUTOMATIC_OUTCOMES,
    ExpiryAction,
    Policy,
    PolicyOutcome,
)
from approvals.policies.conditions import (
    ConditionError,
    check_condition,
)
from approvals.rules import (
    review_role_names,
)

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
