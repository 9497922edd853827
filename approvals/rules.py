"""Who may decide what, and what a valid decision is: one implementation of each rule, called
by the review page's form, the API and `checkpoint_decide` alike (the form calls them to give
field errors early; the transition calls them again, because it is the one that must hold).
"""

from __future__ import annotations

from typing import Any

from approvals.models import Checkpoint, Decision
from core.exceptions import InvalidInput, NotAllowed
from core.roles import user_roles

Outcome = Decision.Outcome

ALLOWED_OUTCOMES = {
    Checkpoint.Kind.APPROVAL: {Outcome.APPROVE, Outcome.REJECT, Outcome.MODIFY},
    Checkpoint.Kind.REVIEW: {Outcome.APPROVE, Outcome.REJECT, Outcome.MODIFY},
    Checkpoint.Kind.QUESTION: {Outcome.ANSWER, Outcome.REJECT},
}


# --- who -----------------------------------------------------------------------------------------


def can_decide(user, cp: Checkpoint) -> bool:
    """The role check: an active user holding the checkpoint's current role (or a superuser).
    Four-eyes and the checkpoint's state are checked by `check_may_review` and the
    transition."""
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return cp.current_role in user_roles(user)


def four_eyes_excluded_ids(cp: Checkpoint) -> list:
    """The people who may never decide this checkpoint: whoever the agent asks for, and the
    agent's owner."""
    return [pk for pk in (cp.requester_id, cp.agent.owner_id) if pk]


def four_eyes_excluded(user, cp: Checkpoint) -> bool:
    return user.pk is not None and user.pk in four_eyes_excluded_ids(cp)


def check_may_review(user, cp: Checkpoint) -> None:
    """Claim, be handed, or vote on `cp`: the role, then four-eyes. Raises NotAllowed."""
    if not can_decide(user, cp):
        raise NotAllowed(f"{user.get_username()} is not a reviewer for role {cp.current_role!r}")
    if four_eyes_excluded(user, cp):
        raise NotAllowed("Four-eyes: the requester of a checkpoint cannot review it")


# --- what ----------------------------------------------------------------------------------------


def option_choices(cp: Checkpoint) -> list[tuple[str, str]]:
    """The checkpoint's custom options as (value, label): `"yes"` or
    `{"value": "yes", "label": "Yes, go ahead"}`."""
    out = []
    for o in cp.options or []:
        if isinstance(o, dict):
            value = str(o.get("value", ""))
            out.append((value, str(o.get("label") or value)))
        else:
            out.append((str(o), str(o)))
    return out


def option_values(cp: Checkpoint) -> list[str]:
    return [value for value, _label in option_choices(cp)]


def validate_decision(
    cp: Checkpoint,
    outcome: str,
    *,
    comment: str = "",
    action: Any = None,
    answer: str = "",
) -> dict | None:
    """Raise InvalidInput (naming the field) unless this is a decision `cp` can take. Returns
    the edited action for `modify` (the current action with the reviewer's arguments), else
    None. `answer` with approve/modify picks one of the checkpoint's custom options."""
    if outcome not in Outcome.values:
        raise InvalidInput(f"Unknown outcome {outcome!r}", "outcome")
    allowed = ALLOWED_OUTCOMES[cp.kind]
    if outcome not in allowed:
        raise InvalidInput(
            f"A {cp.kind} checkpoint takes one of: {', '.join(sorted(allowed))}", "outcome"
        )
    values = option_values(cp)
    if outcome == Outcome.REJECT and not (comment or "").strip():
        raise InvalidInput("A rejection needs a reason the agent can act on.", "comment")
    if outcome == Outcome.ANSWER:
        if not (answer or "").strip():
            raise InvalidInput("An answer is required.", "answer")
        if values and answer not in values:
            raise InvalidInput(f"Pick one of the offered answers: {', '.join(values)}.", "answer")
    if outcome in (Outcome.APPROVE, Outcome.MODIFY) and answer and values and answer not in values:
        raise InvalidInput(f"Pick one of the offered options: {', '.join(values)}.", "answer")
    if outcome != Outcome.MODIFY:
        return None
    if not isinstance(action, dict) or not isinstance(action.get("args"), dict):
        raise InvalidInput(
            'An edited action must be an object like {"tool": ..., "args": {...}}', "action"
        )
    original_tool = (cp.action or {}).get("tool")
    tool = action.get("tool", original_tool)
    if tool != original_tool:
        raise InvalidInput(
            f"Edits may change the arguments, not the tool ({original_tool!r})", "action"
        )
    return {**(cp.final_action or cp.action or {}), "tool": tool, "args": action["args"]}
