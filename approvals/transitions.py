"""The checkpoint state machine: the only code that changes a checkpoint's status.

Every function here is one transaction: lock or conditionally update the row, check that
the move is still allowed, write the audit event, and schedule follow-ups on commit.
A caller that lost a race gets `Conflict` naming the winner.

    pending ──decide(approve/modify, quorum reached, last stage)──▶ approved
    pending ──decide(approve/modify, quorum reached, more stages)──▶ pending (next stage)
    pending ──decide(reject)───────────────────────────────────────▶ rejected
    pending ──decide(answer)───────────────────────────────────────▶ answered
    pending ──expire(deadline passed, no escalation step left)─────▶ expired
    pending ──expire(deadline passed, a ladder step left)──────────▶ pending (the step's role)
    pending ──cancel──────────────────────────────────────────────▶ cancelled
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from approvals import audit, edits, policies, rules
from approvals.artifacts import (
    ArtifactEdit,
    ArtifactInput,
    artifact_attach,
    artifact_edits_prepare,
    artifact_edits_save,
)
from approvals.audit import Actor, AuditVerb
from approvals.models import Checkpoint, Decision, ExpiryAction
from approvals.signals import (
    checkpoint_requested,
    checkpoint_resolved,
    checkpoint_routed,
    checkpoints_resolved,
)
from core.canonical import action_sha256
from core.exceptions import Conflict, InvalidInput, NotAllowed
from core.roles import is_manager

Status = Checkpoint.Status
Outcome = Decision.Outcome


def _winner(cp: Checkpoint) -> str:
    if cp.status == Status.EXPIRED:
        return "expiry"
    if cp.status == Status.CANCELLED:
        return cp.resolution_reason or "cancelled"
    if cp.resolved_by_id:
        return cp.resolved_by.get_username()
    return ""


def _conflict_for(cp: Checkpoint) -> Conflict:
    cp = Checkpoint.objects.select_related("resolved_by").get(pk=cp.pk)
    winner = _winner(cp)
    return Conflict(
        f"Checkpoint is already {cp.status}" + (f" (by {winner})" if winner else ""),
        status=cp.status,
        winner=winner,
        at=cp.resolved_at,
    )


# --- request ----------------------------------------------------------------------------------


def checkpoint_request(
    *,
    run,
    actor: Actor,
    title: str,
    kind: str = Checkpoint.Kind.APPROVAL,
    summary: str = "",
    action: dict | None = None,
    context: dict | None = None,
    risk: str = "medium",
    options: list | None = None,
    role_hint: str = "",
    expires_in: int | None = None,
    requester=None,
    idempotency_key: str = "",
    artifacts: list[ArtifactInput] | None = None,
) -> Checkpoint:
    """Create a pending checkpoint for `run`, routed by policy. The caller (agents) marks the
    run waiting in the same transaction."""
    agent = run.agent
    action = action or {}
    route = policies.route(
        agent_slug=agent.slug,
        tool=action.get("tool", ""),
        kind=kind,
        risk=risk,
        role_hint=role_hint,
    )
    now = timezone.now()
    timeout = expires_in if expires_in else route.timeout_seconds
    # No savepoint: callers never catch a failure here and carry on in the same transaction.
    with audit.atomic(savepoint=False):
        cp = Checkpoint.objects.create(
            run=run,
            agent=agent,
            requester=requester or getattr(run, "created_by", None),
            kind=kind,
            title=title,
            summary=summary,
            action=action,
            context=context or {},
            risk=risk,
            options=options or [],
            role_hint=role_hint,
            policy=route.policy,
            stages=route.stages,
            stage=0,
            current_role=route.stages[0]["role"],
            approvals_needed=route.stages[0]["approvals"],
            deadline=now + dt.timedelta(seconds=timeout),
            expiry_action=route.expiry_action,
            escalation_role=route.escalation_role,
            escalation_timeout_seconds=route.escalation_timeout_seconds,
            escalation_ladder=route.escalation_ladder,
            sla_seconds=route.sla_seconds,
            idempotency_key=idempotency_key,
            created_at=now,
        )
        attached = [artifact_attach(cp, a) for a in artifacts or []]
        audit.record(
            actor,
            AuditVerb.CHECKPOINT_REQUESTED,
            cp,
            {
                "run": str(run.pk),
                "kind": kind,
                "title": title,
                "risk": risk,
                "action_sha256": action_sha256(action),
                "stages": route.stages,
                "policy": route.policy.name if route.policy else None,
                "routing": route.notes,
                "deadline": cp.deadline,
                "artifacts": [{"ref": a.ref, "sha256": a.sha256} for a in attached],
            },
        )
        checkpoint_requested.send(sender=Checkpoint, checkpoint=cp)
    return cp


# --- claim / release ----------------------------------------------------------------------------


def _raise_if_resolved(cp: Checkpoint) -> None:
    """After a conditional update that changed nothing: if a decision, expiry or cancellation
    got there first, say so (Conflict naming the winner)."""
    cp.refresh_from_db()
    if cp.status != Status.PENDING:
        raise _conflict_for(cp)


def checkpoint_claim(checkpoint_id, user, *, lease_seconds: int | None = None) -> Checkpoint:
    """Take a lease on a pending checkpoint so other reviewers leave it alone."""
    lease = dt.timedelta(seconds=lease_seconds or settings.HITL_CLAIM_LEASE)
    with audit.atomic():
        cp = Checkpoint.objects.select_related("agent").get(pk=checkpoint_id)
        rules.check_may_review(user, cp)
        now = timezone.now()
        updated = (
            Checkpoint.objects.filter(pk=cp.pk, status=Status.PENDING)
            .filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now) | Q(claimed_by=user))
            .update(claimed_by=user, claim_expires_at=now + lease, version=F("version") + 1)
        )
        if not updated:
            _raise_if_resolved(cp)
            holder = cp.claimed_by.get_username() if cp.claimed_by else ""
            raise Conflict(
                f"Checkpoint is claimed by {holder} until {cp.claim_expires_at:%H:%M:%S} UTC",
                status=cp.status,
                winner=holder,
                at=cp.claim_expires_at,
            )
        cp.refresh_from_db()
        audit.record(
            Actor.for_user(user), AuditVerb.CHECKPOINT_CLAIMED, cp, {"until": cp.claim_expires_at}
        )
    return cp


def checkpoint_release(checkpoint_id, user, *, reassign_to=None) -> Checkpoint:
    """Give up a claim. Managers may release anyone's claim, or hand it to another reviewer.
    Releasing an unclaimed checkpoint, or handing it to whoever holds it, changes nothing."""
    with audit.atomic():
        cp = Checkpoint.objects.select_related("agent", "claimed_by").get(pk=checkpoint_id)
        manager = is_manager(user)
        if cp.claimed_by_id != user.pk and not manager:
            raise NotAllowed("Only the holder of a claim or a manager can release it")
        if reassign_to is not None:
            if not manager:
                raise NotAllowed("Only managers can reassign a checkpoint")
            rules.check_may_review(reassign_to, cp)
        if cp.status != Status.PENDING:
            raise _conflict_for(cp)
        now = timezone.now()
        holder = cp.claimed_by_id if cp.claim_is_active(now) else None
        if holder == (reassign_to.pk if reassign_to is not None else None):
            return cp  # nothing to release or hand over: not a change, not audited
        new = {
            "claimed_by": reassign_to,
            "claim_expires_at": (
                now + dt.timedelta(seconds=settings.HITL_CLAIM_LEASE) if reassign_to else None
            ),
        }
        updated = Checkpoint.objects.filter(
            pk=cp.pk, status=Status.PENDING, claimed_by_id=cp.claimed_by_id
        ).update(version=F("version") + 1, **new)
        if not updated:
            _raise_if_resolved(cp)
            raise Conflict("The claim changed meanwhile; reload", status=cp.status)
        previous = cp.claimed_by.get_username() if cp.claimed_by else None
        cp.refresh_from_db()
        if reassign_to is not None:
            verb = AuditVerb.CHECKPOINT_REASSIGNED
            data = {"from": previous, "to": reassign_to.get_username()}
        else:
            verb, data = AuditVerb.CHECKPOINT_RELEASED, {"from": previous}
        audit.record(Actor.for_user(user), verb, cp, data)
    return cp


# --- decide -----------------------------------------------------------------------------------


@dataclass
class DecideResult:
    checkpoint: Checkpoint
    decision: Decision
    resolved: bool
    stage_advanced: bool = False


def checkpoint_decide(
    checkpoint_id,
    user,
    outcome: str,
    *,
    comment: str = "",
    action: Any = None,
    answer: str = "",
    channel: str = Decision.Channel.WEB,
    edited_artifacts: list[ArtifactEdit] | None = None,
    seen_action_sha256: str = "",
    credential: rules.Credential | None = None,
) -> DecideResult:
    """Record one reviewer's vote; resolve or advance the checkpoint when its stage's quorum
    is reached (one rejection resolves it at once).

    `edited_artifacts` (outcome `modify`, `review` checkpoints): the reviewer's versions of
    the draft. Each is stored as a new Artifact beside the original (`edited_from`), the
    edited action lists them under `edited_artifacts` (ref, sha256, diff) with references to
    the originals in its args pointed at the edited versions, and the audit event records
    the diffs. On approval that edited action is the checkpoint's `final_action`, which is
    what the agent gets back and runs.

    `answer` with `approve`/`modify` picks one of the checkpoint's custom `options`.

    `seen_action_sha256`: the fingerprint of the action version the reviewer looked at (the
    review page and the API send it). If another reviewer's edit changed the action since,
    the vote is refused with Conflict instead of approving something this reviewer never
    saw. A reviewer who voted on an earlier stage cannot vote on a later one: each stage is
    another pair of eyes.

    `credential`: how the reviewer authenticated (`approvals.credentials.credential_for`):
    every HTTP edge passes its request's; None means code running inside the portal."""
    with audit.atomic():
        # Row lock on PostgreSQL; on SQLite the IMMEDIATE transaction already holds the write
        # lock. The conditional update below re-checks either way.
        cp = (
            Checkpoint.objects.select_for_update(of=("self",))
            .select_related("agent")
            .get(pk=checkpoint_id)
        )
        now = timezone.now()
        _check_vote_allowed(cp, user, now, seen_action_sha256)
        rules.check_credential(credential or rules.Credential.internal(), cp, now)
        edited, artifact_summary = _apply_edits(
            cp, outcome, comment, action, answer, edited_artifacts
        )
        decision = _record_vote(cp, user, outcome, comment, answer, edited, channel, now)
        actor = Actor.for_user(user)
        audit.record(
            actor,
            AuditVerb.DECISION_RECORDED,
            cp,
            {
                "decision": decision.pk,
                "outcome": outcome,
                "stage": cp.stage,
                "role": cp.current_role,
                "comment": comment,
                "edited_action": edited,
                "answer": answer,
                "action_sha256": decision.action_sha256,
                "channel": channel,
                **_edit_audit(cp, edited, artifact_summary),
            },
        )
        if outcome == Outcome.REJECT:
            return _resolve(cp, decision, Status.REJECTED, actor, now, reason=comment)
        if outcome == Outcome.ANSWER:
            return _resolve(cp, decision, Status.ANSWERED, actor, now, answer=answer)
        return _tally(cp, decision, edited, answer, actor, now)


def _check_vote_allowed(cp: Checkpoint, user, now: dt.datetime, seen_action_sha256: str) -> None:
    """May `user` vote on `cp` now? State, deadline, role and four-eyes, claim, an earlier
    stage's voter, and the version of the action they saw."""
    if cp.status != Status.PENDING:
        raise _conflict_for(cp)
    if cp.deadline <= now:
        raise Conflict(
            "The deadline has passed; the checkpoint is being expired",
            status="expired" if cp.expiry_action == ExpiryAction.REJECT else cp.status,
            winner="expiry",
            at=cp.deadline,
        )
    rules.check_may_review(user, cp)
    if cp.claim_is_active(now) and cp.claimed_by_id != user.pk:
        holder = cp.claimed_by.get_username()
        raise Conflict(f"Checkpoint is claimed by {holder}", status=cp.status, winner=holder)
    if cp.stage and Decision.objects.filter(checkpoint=cp, reviewer=user).exists():
        raise NotAllowed("You approved an earlier stage; a later stage needs someone else")
    shown = cp.final_action or cp.action
    if seen_action_sha256 and seen_action_sha256 != action_sha256(shown):
        editor = (
            Decision.objects.filter(checkpoint=cp, outcome=Outcome.MODIFY)
            .select_related("reviewer")
            .order_by("-created_at")
            .first()
        )
        who = editor.reviewer.get_username() if editor else "another reviewer"
        raise Conflict(
            f"The action was edited by {who} since you loaded it; review the new version",
            status=cp.status,
            winner=who,
        )


def _apply_edits(
    cp: Checkpoint,
    outcome: str,
    comment: str,
    action: Any,
    answer: str,
    edited_artifacts: list[ArtifactEdit] | None,
) -> tuple[dict | None, list[dict]]:
    """Validate the decision (`rules`), and store the reviewer's edited artifacts once it is
    valid. Returns the edited action (None unless `modify`) and the artifacts' summary."""
    prepared, summary = [], []
    if edited_artifacts:
        if outcome != Outcome.MODIFY:
            raise InvalidInput("Edited artifacts come with outcome 'modify'", "outcome")
        prepared, summary = artifact_edits_prepare(cp, edited_artifacts)
        if action is None:
            current = cp.final_action or cp.action or {}
            action = {"tool": current.get("tool"), "args": current.get("args") or {}}
    edited = rules.validate_decision(cp, outcome, comment=comment, action=action, answer=answer)
    if summary and edited is not None:
        refs = {a["original"]: a["ref"] for a in summary}
        edited["args"] = edits.substitute_refs(edited["args"], refs)
        edited["edited_artifacts"] = [
            {k: a[k] for k in ("name", "original", "ref", "sha256")} for a in summary
        ]
        artifact_edits_save(cp, prepared)
    return edited, summary


def _record_vote(
    cp: Checkpoint,
    user,
    outcome: str,
    comment: str,
    answer: str,
    edited: dict | None,
    channel: str,
    now: dt.datetime,
) -> Decision:
    """The Decision row: one per reviewer per stage (a double submit is a Conflict). An
    approval records the fingerprint of the exact action version it approves."""
    current_action = edited if edited is not None else (cp.final_action or cp.action)
    try:
        with transaction.atomic():
            return Decision.objects.create(
                checkpoint=cp,
                reviewer=user,
                stage=cp.stage,
                role=cp.current_role,
                outcome=outcome,
                comment=comment or "",
                edited_action=edited,
                answer=answer or "",
                action_sha256=(
                    action_sha256(current_action)
                    if outcome in (Outcome.APPROVE, Outcome.MODIFY)
                    else ""
                ),
                channel=channel,
                created_at=now,
            )
    except IntegrityError:
        raise Conflict(
            "You already voted on this stage", status=cp.status, winner=user.get_username()
        ) from None


def _tally(
    cp: Checkpoint,
    decision: Decision,
    edited: dict | None,
    answer: str,
    actor: Actor,
    now: dt.datetime,
) -> DecideResult:
    """An approval: count this stage's votes for this exact version of the action; resolve,
    move to the next stage, or wait for more votes."""
    current_action = edited if edited is not None else (cp.final_action or cp.action)
    votes = (
        Decision.objects.filter(
            checkpoint=cp,
            stage=cp.stage,
            outcome__in=[Outcome.APPROVE, Outcome.MODIFY],
            action_sha256=decision.action_sha256,
        )
        .values("reviewer")
        .distinct()
        .count()
    )
    if votes < cp.approvals_needed:
        _conditional_update(cp, final_action=current_action, claimed_by=None, claim_expires_at=None)
        return DecideResult(cp, decision, resolved=False)
    if cp.stage + 1 < len(cp.stages):
        nxt = cp.stages[cp.stage + 1]
        _conditional_update(
            cp,
            final_action=current_action,
            stage=cp.stage + 1,
            current_role=nxt["role"],
            approvals_needed=nxt["approvals"],
            claimed_by=None,
            claim_expires_at=None,
        )
        audit.record(
            actor,
            AuditVerb.CHECKPOINT_STAGE_ADVANCED,
            cp,
            {"stage": cp.stage, "role": nxt["role"], "approvals_needed": nxt["approvals"]},
        )
        checkpoint_routed.send(sender=Checkpoint, checkpoint=cp, reason="stage")
        return DecideResult(cp, decision, resolved=False, stage_advanced=True)
    chosen = answer if cp.options and answer else ""
    return _resolve(
        cp, decision, Status.APPROVED, actor, now, final_action=current_action, answer=chosen
    )


def _edit_audit(cp: Checkpoint, edited: dict | None, artifacts: list[dict]) -> dict:
    """What the reviewer changed, as diffs, for the audit trail (only when something was)."""
    data: dict[str, Any] = {}
    if edited is not None:
        before = cp.final_action or cp.action or {}
        after = {k: v for k, v in edited.items() if k != "edited_artifacts"}
        before = {k: v for k, v in before.items() if k != "edited_artifacts"}
        if after != before:
            data["action_diff"] = edits.cap(edits.action_diff(before, after))
    if artifacts:
        data["edited_artifacts"] = [
            {
                **{k: a[k] for k in ("name", "original", "original_sha256", "ref", "sha256")},
                "diff": edits.cap(a["diff"]),
            }
            for a in artifacts
        ]
    return data


def _conditional_update(cp: Checkpoint, **fields) -> None:
    """Update a pending checkpoint only if nobody changed it since we read it."""
    updated = Checkpoint.objects.filter(pk=cp.pk, status=Status.PENDING, version=cp.version).update(
        version=cp.version + 1, updated_at=timezone.now(), **fields
    )
    if not updated:
        raise _conflict_for(cp)
    for name, value in fields.items():
        setattr(cp, name, value)
    cp.version += 1


def _resolve(
    cp: Checkpoint,
    decision: Decision | None,
    status: str,
    actor: Actor,
    now: dt.datetime,
    *,
    reason: str = "",
    answer: str = "",
    final_action: dict | None = None,
) -> DecideResult:
    fields: dict[str, Any] = {
        "status": status,
        "resolved_at": now,
        "resolved_by": decision.reviewer if decision else None,
        "resolution_reason": reason,
        "answer": answer,
        "claimed_by": None,
        "claim_expires_at": None,
    }
    if final_action is not None:
        fields["final_action"] = final_action
        fields["final_action_sha256"] = action_sha256(final_action)
    _conditional_update(cp, **fields)
    audit.record(
        actor,
        AuditVerb.for_status(status),
        cp,
        {
            "decision": decision.pk if decision else None,
            "reason": reason,
            "answer": answer,
            "final_action_sha256": fields.get("final_action_sha256", ""),
            "edited": bool(final_action is not None and final_action != cp.action),
        },
    )
    checkpoint_resolved.send(sender=Checkpoint, checkpoint=cp)
    return DecideResult(cp, decision, resolved=True)  # type: ignore[arg-type]


# --- expire / cancel --------------------------------------------------------------------------


def checkpoint_expire(checkpoint_id, *, now: dt.datetime | None = None) -> str:
    """Act on a checkpoint whose deadline passed: take the next step of its escalation ladder,
    or (none left) auto-reject it. Returns "expired" or "escalated"; raises Conflict if a
    decision got there first."""
    now = now or timezone.now()
    with audit.atomic():
        cp = Checkpoint.objects.select_for_update().get(pk=checkpoint_id)
        if cp.status != Status.PENDING:
            raise _conflict_for(cp)
        if cp.deadline > now:
            raise Conflict("The deadline has not passed", status=cp.status)
        actor = Actor.system("expiry-sweep")
        if _escalates(cp):
            audit.record(*_escalate(cp, now, actor))
            checkpoint_routed.send(sender=Checkpoint, checkpoint=cp, reason="escalated")
            return "escalated"
        _resolve(cp, None, Status.EXPIRED, actor, now, reason=_expiry_reason(cp, now))
        return "expired"


def checkpoint_cancel(checkpoint_id, actor: Actor, *, reason: str = "") -> Checkpoint:
    """Withdraw a pending checkpoint (the agent no longer needs it, or its run ended)."""
    with audit.atomic():
        cp = Checkpoint.objects.select_for_update().get(pk=checkpoint_id)
        if cp.status != Status.PENDING:
            raise _conflict_for(cp)
        _resolve(
            cp,
            None,
            Status.CANCELLED,
            actor,
            timezone.now(),
            reason=reason or f"cancelled by {actor.label or actor.type}",
        )
    return cp


# --- batch expiry (the sweep) -------------------------------------------------------------------


def _escalates(cp: Checkpoint) -> bool:
    """At its deadline this checkpoint takes the next step of its escalation ladder (the
    policy's, snapshotted at request) instead of expiring."""
    return cp.next_escalation is not None


def _escalate(cp: Checkpoint, now: dt.datetime, actor: Actor) -> tuple:
    """Hand a pending checkpoint to its ladder's next role with that step's deadline; returns
    the audit event for the caller to record (alone, or with a batch)."""
    step = cp.next_escalation
    new_deadline = now + dt.timedelta(seconds=int(step["timeout_seconds"]))
    _conditional_update(
        cp,
        current_role=step["role"],
        approvals_needed=1,
        deadline=new_deadline,
        escalated=True,
        escalation_step=cp.escalation_step + 1,
        claimed_by=None,
        claim_expires_at=None,
    )
    return (
        actor,
        AuditVerb.CHECKPOINT_ESCALATED,
        cp,
        {
            "role": step["role"],
            "deadline": new_deadline,
            "step": cp.escalation_step,
            "steps": len(cp.escalation_ladder),
        },
    )


def _expiry_reason(cp: Checkpoint, now: dt.datetime) -> str:
    waited = int((now - cp.created_at).total_seconds())
    after = f" after escalation to {cp.current_role}" if cp.escalation_step else ""
    return (
        f"No decision within {waited} s{after} (deadline {cp.deadline:%Y-%m-%d %H:%M:%S} UTC); "
        "auto-rejected"
    )


def _set_reasons(reasons: dict) -> None:
    """Each row's own reason text, in one executemany: a 500-branch CASE costs more in
    expression building than the UPDATE itself (see docs/benchmarks.md, expiry sweep)."""
    pk = Checkpoint._meta.pk
    table = connection.ops.quote_name(Checkpoint._meta.db_table)
    column = connection.ops.quote_name(Checkpoint._meta.get_field("resolution_reason").column)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {column} = %s WHERE {connection.ops.quote_name(pk.column)} = %s",
            [(text, pk.get_db_prep_value(key, connection)) for key, text in reasons.items()],
        )


def checkpoint_expire_batch(*, now: dt.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Expire or escalate up to `limit` overdue pending checkpoints in one transaction: the
    same outcomes, audit events and signals as `checkpoint_expire`, at a fraction of the cost.

    Exactly one outcome per checkpoint: the rows are locked for the transaction (PostgreSQL
    `FOR UPDATE SKIP LOCKED`: a row a reviewer is deciding right now is left for the next
    round; SQLite: the IMMEDIATE transaction holds the write lock), and the status change is
    still conditional on `pending`. A decision that comes after sees `expired` (Conflict), and
    `checkpoint_decide` refuses anything past its deadline anyway.
    """
    now = now or timezone.now()
    counts = {"expired": 0, "escalated": 0, "skipped": 0}
    actor = Actor.system("expiry-sweep")
    with audit.atomic():
        qs = Checkpoint.objects.filter(status=Status.PENDING, deadline__lte=now).order_by(
            "deadline"
        )
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        rows = list(qs[:limit])
        if not rows:
            return counts
        escalate = [cp for cp in rows if _escalates(cp)]
        escalate_ids = {cp.pk for cp in escalate}
        expire = [cp for cp in rows if cp.pk not in escalate_ids]
        events: list[tuple[Actor, str, Checkpoint, dict]] = []
        resolved: list[Checkpoint] = []
        if expire:
            reasons = {cp.pk: _expiry_reason(cp, now) for cp in expire}
            updated = Checkpoint.objects.filter(pk__in=list(reasons), status=Status.PENDING).update(
                status=Status.EXPIRED,
                resolved_at=now,
                resolved_by=None,
                answer="",
                claimed_by=None,
                claim_expires_at=None,
                version=F("version") + 1,
                updated_at=now,
            )
            if updated != len(expire):
                # Cannot happen while we hold the rows; if it does, let the per-row path decide.
                raise Conflict(f"expiry batch raced: {updated} of {len(expire)} updated")
            _set_reasons(reasons)
            for cp in expire:
                cp.status, cp.resolved_at = Status.EXPIRED, now
                cp.resolution_reason = reasons[cp.pk]
                cp.claimed_by, cp.claim_expires_at, cp.version = None, None, cp.version + 1
                events.append(
                    (
                        actor,
                        AuditVerb.CHECKPOINT_EXPIRED,
                        cp,
                        {
                            "decision": None,
                            "reason": reasons[cp.pk],
                            "answer": "",
                            "final_action_sha256": "",
                            "edited": False,
                        },
                    )
                )
                resolved.append(cp)
            counts["expired"] = len(expire)
        for cp in escalate:
            events.append(_escalate(cp, now, actor))
            counts["escalated"] += 1
        audit.record_many(events)
        for cp in escalate:
            checkpoint_routed.send(sender=Checkpoint, checkpoint=cp, reason="escalated", batch=True)
        for cp in resolved:
            checkpoint_resolved.send(sender=Checkpoint, checkpoint=cp, batch=True)
        if resolved:
            checkpoints_resolved.send(sender=Checkpoint, checkpoints=resolved)
    return counts
