"""Every change to a policy, validated and audited: versions (draft → publish, roll back,
revoke), and who may make them, with the one four-eyes rule (`four_eyes_blocks`)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from approvals.models import (
    Policy,
    PolicyVersion,
)
from approvals.policies.routing import table_changed
from approvals.policies.validation import validate_policy
from approvals.rules import (
    user_review_roles,
)
from audit import events as audit
from audit.models import AuditEvent, AuditVerb
from core.canonical import normalize
from core.exceptions import Conflict, InvalidInput, NotAllowed
from core.roles import is_manager

log = logging.getLogger(__name__)

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


def four_eyes_blocks(user, policy: Policy, version: PolicyVersion | None) -> bool:
    """The one four-eyes rule of policy changes: where it applies (every standing rule; every
    policy with HITL_POLICY_FOUR_EYES), whoever wrote `version` (or proposed the rule) may
    not publish it."""
    required = policy.is_standing or settings.HITL_POLICY_FOUR_EYES
    return required and user.pk in authors(policy, version)


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
    if four_eyes_blocks(user, policy, version):
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
