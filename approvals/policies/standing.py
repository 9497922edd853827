"""Standing rules ("always allow"), proposed by a reviewer from a review page; another
reviewer of the role or a manager publishes them (`changes`)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import (
    RISK_ORDER,
    Checkpoint,
    Policy,
    PolicyOutcome,
)
from approvals.policies.changes import policy_record
from approvals.policies.conditions import (
    suggest_condition,
)
from approvals.policies.validation import validate_policy
from approvals.rules import (
    can_decide,
    four_eyes_excluded,
)
from audit import events as audit
from audit.models import AuditVerb
from core.exceptions import InvalidInput, NotAllowed

# --- standing rules ("always allow"), proposed from a review page --------------------------------


def standing_rule_propose(
    cp: Checkpoint, user, *, condition: str, days: int, reason: str = ""
) -> Policy:
    """A reviewer of the checkpoint's role proposes to approve requests like this one
    automatically: a draft standing rule that expires after `days` and that another reviewer
    of the role or a manager must publish. InvalidInput (naming the field) for a bad
    condition or duration; NotAllowed for someone who may not review this checkpoint."""
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
