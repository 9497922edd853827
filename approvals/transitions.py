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
    pending ──auto_decide(its policy version approves or rejects)───▶ approved | rejected

Beside the status, one mark: a pending checkpoint that passes its SLA target undecided is
marked breached once (`checkpoint_sla_breach`, `checkpoint_sla_breach_batch`): an audit event
and the `checkpoint_sla_breached` signal, at that moment. Its status does not change. A vote,
expiry or cancellation that comes after the SLA due time but before the mark (the timer or
the sweep had not got there yet) marks it first, in its own transaction (`_sla_mark_if_late`):
every checkpoint the metrics count as breached is marked, exactly once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection
from django.db.models import F, Q
from django.utils import timezone

from approvals import edits, policies, rules
from approvals.artifacts import (
    ArtifactEdit,
    ArtifactInput,
    artifact_attach,
    artifact_edits_prepare,
    artifact_edits_save,
)
from approvals.models import Artifact, Checkpoint, Decision, ExpiryAction, PolicyOutcome
from approvals.policies import conditions
from approvals.receipts import receipt_issue
from approvals.requests import CheckpointRequest
from approvals.selectors import checkpoints_visible_to
from approvals.signals import (
    checkpoint_requested,
    checkpoint_resolved,
    checkpoint_routed,
    checkpoint_sla_breached,
    checkpoints_resolved,
    drill_resolved,
)
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.canonical import action_sha256
from core.exceptions import Conflict, InvalidInput, NotAllowed
from core.ledger import sequencer
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
    automatic = cp.decisions.filter(policy_version__isnull=False).select_related("policy_version")
    decision = automatic.first()
    return decision.decider_label if decision else ""


def _conflict_for(cp: Checkpoint) -> Conflict:
    cp = Checkpoint.with_drills.select_related("resolved_by").get(pk=cp.pk)
    winner = _winner(cp)
    return Conflict(
        f"Checkpoint is already {cp.status}" + (f" (by {winner})" if winner else ""),
        status=cp.status,
        winner=winner,
        at=cp.resolved_at,
    )


# --- request ----------------------------------------------------------------------------------


def _artifact_facts(artifacts: list[ArtifactInput]) -> list[dict]:
    facts = []
    for a in artifacts:
        if a.ref is not None:
            size, content_type = a.ref.size, a.ref.content_type
        else:
            content = a.content or ""
            size = len(content.encode() if isinstance(content, str) else content)
            content_type = a.content_type
        facts.append({"name": a.name, "kind": a.kind, "size": size, "content_type": content_type})
    return facts


def checkpoint_request(run, req: CheckpointRequest, *, actor: Actor) -> Checkpoint:
    """Create a pending checkpoint for `run`, routed by the published policies, pinned to the
    version that routed it. The caller (agents) marks the run waiting in the same
    transaction, then calls `checkpoint_auto_decide` if a policy decides it (`cp.automatic`):
    the decision must find the run waiting, as a person's would. `req.allowed_outcomes` is
    checked by `rules.check_allowed_outcomes` at the edge; an empty list allows what the kind
    takes.
    `req.drill`: the manager's Drill this one plays (see `oversight.drills`); nothing else about
    it differs."""
    agent = run.agent
    action = req.action or {}
    kind, risk, title, role_hint = req.kind, req.risk, req.title, req.role_hint
    artifacts, external_id = req.artifacts, req.external_id
    now = timezone.now()
    facts = conditions.request_facts(
        agent_slug=agent.slug,
        action=action,
        kind=kind,
        risk=risk,
        confidence=req.confidence,
        title=title,
        role_hint=role_hint,
        artifacts=_artifact_facts(artifacts or []),
        now=now,
    )
    route = policies.route(
        agent_slug=agent.slug,
        tool=action.get("tool", ""),
        kind=kind,
        risk=risk,
        role_hint=role_hint,
        facts=facts,
        now=now,
    )
    timeout = req.expires_in if req.expires_in else route.timeout_seconds
    # No savepoint: callers never catch a failure here and carry on in the same transaction.
    with audit.atomic(savepoint=False):
        cp = Checkpoint.with_drills.create(
            run=run,
            agent=agent,
            requester=req.requester or getattr(run, "created_by", None),
            kind=kind,
            title=title,
            summary=req.summary,
            action=action,
            tool=str(action.get("tool") or "")[:200],
            context=req.context or {},
            risk=risk,
            confidence=req.confidence,
            options=req.options or [],
            role_hint=role_hint,
            policy_id=route.version.policy_id if route.version else None,
            policy_version=route.version,
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
            sla_due_at=(
                now + dt.timedelta(seconds=route.sla_seconds) if route.sla_seconds else None
            ),
            idempotency_key=req.idempotency_key,
            external_id=external_id,
            request_sha256=req.request_sha256,
            allowed_outcomes=req.allowed_outcomes or [],
            reject_options=req.reject_options or [],
            drill=req.drill,
            created_at=now,
        )
        attached = [artifact_attach(cp, a) for a in artifacts or []]
        policies.shadow_record(cp, route.shadow)
        audit.record(
            actor,
            AuditVerb.CHECKPOINT_REQUESTED,
            cp,
            {
                "run": str(run.pk),
                "kind": kind,
                "title": title,
                "risk": risk,
                "confidence": req.confidence,
                "action_sha256": action_sha256(action),
                "stages": route.stages,
                "policy": route.policy.name if route.policy else None,
                "policy_version": route.version.number if route.version else None,
                "outcome": route.outcome,
                "routing": route.notes,
                "shadow": [{"policy": v.label, "would": would} for v, would in route.shadow],
                "deadline": cp.deadline,
                "artifacts": [{"ref": a.ref, "sha256": a.sha256} for a in attached],
                **({"external_id": external_id} if external_id else {}),
                **({"allowed_outcomes": cp.allowed_outcomes} if cp.allowed_outcomes else {}),
            },
        )
        cp.automatic = route.automatic
        if not route.automatic:
            # A request a policy decides at once is never a reviewer's to hear about: it goes
            # straight to checkpoint_resolved.
            checkpoint_requested.send(sender=Checkpoint, checkpoint=cp)
    return cp


def checkpoint_auto_decide(checkpoint_id) -> DecideResult:
    """The policy version that routed a pending checkpoint decides it: a Decision by the
    version (not by a person), audited with the condition that matched, resolved and
    announced exactly like a person's decision (webhook, long-poll, resume)."""
    with audit.atomic():
        cp = (
            Checkpoint.with_drills.select_for_update(of=("self",))
            .select_related("agent", "policy_version")
            .get(pk=checkpoint_id)
        )
        if cp.status != Status.PENDING:
            raise _conflict_for(cp)
        version = cp.policy_version
        outcome = version.get("outcome") if version else None
        if outcome not in (PolicyOutcome.AUTO_APPROVE, PolicyOutcome.AUTO_REJECT):
            raise Conflict("No policy decides this checkpoint automatically", status=cp.status)
        now = timezone.now()
        approve = outcome == PolicyOutcome.AUTO_APPROVE
        reason = (version.get("reason") or "").strip() or f"{outcome} by policy {version.label}"
        decision = Decision.objects.create(
            checkpoint=cp,
            reviewer=None,
            policy_version=version,
            stage=cp.stage,
            role=cp.current_role,
            outcome=Outcome.APPROVE if approve else Outcome.REJECT,
            comment=reason,
            action_sha256=action_sha256(cp.action) if approve else "",
            channel=Decision.Channel.POLICY,
            created_at=now,
        )
        actor = Actor.for_policy(version)
        audit.record(
            actor,
            AuditVerb.DECISION_AUTOMATIC,
            cp,
            {
                "decision": decision.pk,
                "outcome": decision.outcome,
                "policy": version.get("name"),
                "policy_version": version.number,
                "condition": version.get("condition") or "",
                "match": {
                    k: version.get(k)
                    for k in ("match_agent", "match_tool", "match_kind", "min_risk")
                    if version.get(k)
                },
                "reason": reason,
                "action_sha256": decision.action_sha256,
            },
        )
        if approve:
            return _resolve(cp, decision, Status.APPROVED, actor, now, final_action=cp.action)
        return _resolve(cp, decision, Status.REJECTED, actor, now, reason=reason)


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
        cp = Checkpoint.with_drills.select_related("agent").get(pk=checkpoint_id)
        rules.check_may_review(user, cp)
        now = timezone.now()
        updated = (
            Checkpoint.with_drills.filter(pk=cp.pk, status=Status.PENDING)
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
        cp = Checkpoint.with_drills.select_related("agent", "claimed_by").get(pk=checkpoint_id)
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
        updated = Checkpoint.with_drills.filter(
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
    # The checkpoint's artifacts when the transition read them (an approval's receipt binds
    # their digests): a representation built next need not read them again.
    artifacts: list[Artifact] | None = None


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
    checked: EditCheck | None = None,
    hidden_is_missing: bool = False,
) -> DecideResult:
    """Record one reviewer's vote; resolve or advance the checkpoint when its stage's quorum
    is reached (one rejection resolves it at once).

    `edited_artifacts` (outcome `modify`, `review` checkpoints): the reviewer's versions of
    the draft. Each is stored as a new Artifact beside the original (`edited_from`), the
    edited action lists them under `edited_artifacts` (ref, sha256, diff) with references to
    the originals in its args pointed at the edited versions, and the audit event records
    the diffs. On approval that edited action is the checkpoint's `final_action`, which is
    what the agent gets back and runs.

    `answer` with `approve`/`modify` picks one of the checkpoint's custom `options`; with
    `reject`, one of its `reject_options` (whose text is the comment when none is written).

    `seen_action_sha256`: the fingerprint of the action version the reviewer looked at (the
    review page and the API send it). If another reviewer's edit changed the action since,
    the vote is refused with Conflict instead of approving something this reviewer never
    saw. A reviewer who voted on an earlier stage cannot vote on a later one: each stage is
    another pair of eyes.

    `credential`: how the reviewer authenticated (`approvals.credentials.credential_for`):
    every HTTP edge passes its request's; None means code running inside the portal.

    `checked`: `checkpoint_edit_check` of these arguments, run by an edge before it opened its
    own transaction (else it runs here, before the row is locked).

    `hidden_is_missing`: a checkpoint the user may not see (`selectors.checkpoints_visible_to`)
    raises Checkpoint.DoesNotExist (the API's 404) before any other check."""
    args = action.get("args") if isinstance(action, dict) else None
    if checked is None or checked.args is not args:
        checked = checkpoint_edit_check(checkpoint_id, outcome, action)
    with audit.atomic():
        # Row lock on PostgreSQL; on SQLite the IMMEDIATE transaction already holds the write
        # lock. The conditional update below re-checks either way. The same read is the
        # access check: the user's roles come as columns of the row (`rules.access_columns`),
        # and what the response and the receipt show of the row's relations comes with it.
        cp = (
            Checkpoint.with_drills.select_for_update(of=("self",))
            .select_related("agent", "run", "policy", "policy_version")
            .annotate(**rules.access_columns(user))
            .get(pk=checkpoint_id)
        )
        access = rules.access_of(cp)
        if hidden_is_missing and not access.visible(user):
            raise Checkpoint.DoesNotExist("No such checkpoint.")
        now = timezone.now()
        _check_vote_allowed(cp, user, now, seen_action_sha256, access)
        rules.check_credential(credential or rules.Credential.internal(), cp, now)
        if checked is not None and checked.problem is not None:
            raise checked.problem
        edited, artifact_summary = _apply_edits(
            cp, outcome, comment, action, answer, edited_artifacts, checked is not None
        )
        comment = rules.decision_comment(cp, outcome, comment, answer)
        _sla_mark_if_late(cp, now)
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
            # `answer` names the reject option chosen, if any.
            return _resolve(
                cp, decision, Status.REJECTED, actor, now, reason=comment, answer=answer
            )
        if outcome == Outcome.ANSWER:
            return _resolve(cp, decision, Status.ANSWERED, actor, now, answer=answer)
        return _tally(cp, decision, edited, answer, actor, now)


@dataclass(frozen=True)
class EditCheck:
    """An edit's arguments checked against the original action's `args_schema`: `problem` is
    the refusal (InvalidInput, given after the state and permission checks), None if they
    fit."""

    args: Any
    problem: InvalidInput | None


def checkpoint_edit_check(
    checkpoint_id, outcome: str, action: Any, *, viewer=None
) -> EditCheck | None:
    """The schema check of a `modify` (None for anything else). It can take up to a second of
    CPU (`HITL_ARGS_SCHEMA_CHECK_BUDGET`), so it runs before any lock is taken: it reads only
    the original action, which never changes once the checkpoint exists. `viewer`: only for a
    checkpoint they may see (else Checkpoint.DoesNotExist), so nobody spends that CPU on a
    checkpoint that is not theirs to decide."""
    if not (
        outcome == Outcome.MODIFY
        and isinstance(action, dict)
        and isinstance(action.get("args"), dict)
    ):
        return None
    rows = Checkpoint.with_drills if viewer is None else checkpoints_visible_to(viewer)
    original = rows.values_list("action", flat=True).get(pk=checkpoint_id)
    try:
        rules.check_args_fit(original, action["args"])
    except InvalidInput as exc:
        return EditCheck(action["args"], exc)
    return EditCheck(action["args"], None)


def _check_vote_allowed(
    cp: Checkpoint,
    user,
    now: dt.datetime,
    seen_action_sha256: str,
    access: rules.Access | None = None,
) -> None:
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
    rules.check_may_review(user, cp, access)
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
    args_checked: bool = False,
) -> tuple[dict | None, list[dict]]:
    """Validate the decision (`rules`), and store the reviewer's edited artifacts once it is
    valid. Returns the edited action (None unless `modify`) and the artifacts' summary.
    `args_checked`: the caller already checked the edit's arguments against the schema."""
    prepared, summary = [], []
    if edited_artifacts:
        if outcome != Outcome.MODIFY:
            raise InvalidInput("Edited artifacts come with outcome 'modify'", "outcome")
        prepared, summary = artifact_edits_prepare(cp, edited_artifacts)
        if action is None:
            current = cp.final_action or cp.action or {}
            action = {"tool": current.get("tool"), "args": current.get("args") or {}}
    edited = rules.validate_decision(
        cp, outcome, comment=comment, action=action, answer=answer, check_args=not args_checked
    )
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
        with audit.atomic():  # a savepoint, unless the whole request rolls back anyway
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
    votes = 1  # this vote: a quorum of one needs no count
    if cp.approvals_needed > 1:
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
    updated = Checkpoint.with_drills.filter(
        pk=cp.pk, status=Status.PENDING, version=cp.version
    ).update(version=cp.version + 1, updated_at=timezone.now(), **fields)
    if not updated:
        raise _conflict_for(cp)
    for name, value in fields.items():
        setattr(cp, name, value)
    cp.version += 1


def _resolved_data(
    *,
    decision: int | None = None,
    reason: str = "",
    answer: str = "",
    final_action_sha256: str = "",
    edited: bool = False,
) -> dict[str, Any]:
    """The payload of a resolution's audit event (approved, rejected, answered, expired): one
    shape for the single path (`_resolve`) and the expiry batch (`checkpoint_expire_batch`)."""
    return {
        "decision": decision,
        "reason": reason,
        "answer": answer,
        "final_action_sha256": final_action_sha256,
        "edited": edited,
    }


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
    _sla_mark_if_late(cp, now)
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
    artifacts = None
    data = _resolved_data(
        decision=decision.pk if decision else None,
        reason=reason,
        answer=answer,
        final_action_sha256=fields.get("final_action_sha256", ""),
        edited=bool(final_action is not None and final_action != cp.action),
    )
    if status == Status.APPROVED:
        # One stage of one approval: the deciding vote is the only decider (no query).
        alone = len(cp.stages) == 1 and cp.approvals_needed == 1 and not cp.escalated
        deciders = None
        if decision is not None and decision.policy_version_id:  # approved by a policy
            deciders = [f"policy {decision.policy_version.label}"]
        elif decision is not None and alone:
            deciders = [decision.reviewer.get_username()]
        artifacts = list(Artifact.objects.filter(checkpoint=cp).order_by("created_at", "name"))
        receipt = receipt_issue(cp, now, deciders=deciders, artifacts=artifacts)
        data["receipt"] = {"id": str(receipt.pk), "expires_at": receipt.expires_at}
    audit.record(actor, AuditVerb.for_status(status), cp, data)
    # Someone waits for this event's seq (its receipt, its long-poll): wake the sequencer.
    sequencer.wake()
    (drill_resolved if cp.drill_id else checkpoint_resolved).send(sender=Checkpoint, checkpoint=cp)
    return DecideResult(cp, decision, resolved=True, artifacts=artifacts)  # type: ignore[arg-type]


# --- expire / cancel --------------------------------------------------------------------------


def checkpoint_expire(checkpoint_id, *, now: dt.datetime | None = None) -> str:
    """Act on a checkpoint whose deadline passed: take the next step of its escalation ladder,
    or (none left) auto-reject it. Returns "expired" or "escalated"; raises Conflict if a
    decision got there first."""
    now = now or timezone.now()
    with audit.atomic():
        cp = Checkpoint.with_drills.select_for_update().get(pk=checkpoint_id)
        if cp.status != Status.PENDING:
            raise _conflict_for(cp)
        if cp.deadline > now:
            raise Conflict("The deadline has not passed", status=cp.status)
        actor = Actor.system("expiry-sweep")
        _sla_mark_if_late(cp, now)
        if _escalates(cp):
            audit.record(*_escalate(cp, now, actor))
            checkpoint_routed.send(sender=Checkpoint, checkpoint=cp, reason="escalated")
            return "escalated"
        _resolve(cp, None, Status.EXPIRED, actor, now, reason=_expiry_reason(cp, now))
        return "expired"


def checkpoint_cancel(checkpoint_id, actor: Actor, *, reason: str = "") -> Checkpoint:
    """Withdraw a pending checkpoint (the agent no longer needs it, or its run ended)."""
    with audit.atomic():
        cp = Checkpoint.with_drills.select_for_update().get(pk=checkpoint_id)
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
        qs = Checkpoint.with_drills.filter(status=Status.PENDING, deadline__lte=now).order_by(
            "deadline"
        )
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        rows = list(qs[:limit])
        if not rows:
            return counts
        # e.g. an SLA target equal to the deadline: marked breached before it expires
        _sla_mark([cp for cp in rows if _sla_late(cp, now)], now, batch=True)
        escalate = [cp for cp in rows if _escalates(cp)]
        escalate_ids = {cp.pk for cp in escalate}
        expire = [cp for cp in rows if cp.pk not in escalate_ids]
        events: list[tuple[Actor, str, Checkpoint, dict]] = []
        resolved: list[Checkpoint] = []
        if expire:
            reasons = {cp.pk: _expiry_reason(cp, now) for cp in expire}
            updated = Checkpoint.with_drills.filter(
                pk__in=list(reasons), status=Status.PENDING
            ).update(
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
                data = _resolved_data(reason=reasons[cp.pk])
                events.append((actor, AuditVerb.CHECKPOINT_EXPIRED, cp, data))
                resolved.append(cp)
            counts["expired"] = len(expire)
        for cp in escalate:
            events.append(_escalate(cp, now, actor))
            counts["escalated"] += 1
        audit.record_many(events)
        for cp in escalate:
            checkpoint_routed.send(sender=Checkpoint, checkpoint=cp, reason="escalated", batch=True)
        real = [cp for cp in resolved if not cp.drill_id]
        for cp in resolved:
            signal = checkpoint_resolved if not cp.drill_id else drill_resolved
            signal.send(sender=Checkpoint, checkpoint=cp, batch=True)
        if real:
            checkpoints_resolved.send(sender=Checkpoint, checkpoints=real)
    return counts


# --- SLA breach (the deadline timer, the sweep, and any resolution that comes after it) ------


def _sla_overdue(now: dt.datetime):
    return Checkpoint.with_drills.filter(
        status=Status.PENDING, sla_breached_at__isnull=True, sla_due_at__lte=now
    )


def _sla_event(cp: Checkpoint, now: dt.datetime) -> tuple:
    return (
        Actor.system("sla-watch"),
        AuditVerb.CHECKPOINT_SLA_BREACHED,
        cp,
        {
            "sla_seconds": cp.sla_seconds,
            "due": cp.sla_due_at,
            "late_by_seconds": round((now - cp.sla_due_at).total_seconds(), 3),
            "role": cp.current_role,
            "policy": cp.policy_id,
        },
    )


def _sla_mark(rows: list[Checkpoint], now: dt.datetime, *, batch: bool = False) -> int:
    """Mark these pending, unmarked checkpoints (locked by the caller's transaction) breached:
    one conditional UPDATE, their audit events, a signal each. Every marking goes through
    here: the sweep's batch, the timer, one by one, and a resolution that comes late."""
    if not rows:
        return 0
    updated = (
        _sla_overdue(now)
        .filter(pk__in=[cp.pk for cp in rows])
        .update(sla_breached_at=now, updated_at=now, version=F("version") + 1)
    )
    if updated != len(rows):
        raise Conflict(f"SLA marking raced: {updated} of {len(rows)} updated")
    for cp in rows:
        cp.sla_breached_at, cp.version = now, cp.version + 1
    audit.record_many([_sla_event(cp, now) for cp in rows])
    for cp in rows:
        checkpoint_sla_breached.send(sender=Checkpoint, checkpoint=cp, batch=batch)
    return len(rows)


def _sla_late(cp: Checkpoint, now: dt.datetime) -> bool:
    """Resolved now, `cp` would count as breached (`metrics.sla_breached`: resolved after its
    due time) but is not marked yet."""
    return cp.sla_due_at is not None and cp.sla_breached_at is None and now > cp.sla_due_at


def _sla_mark_if_late(cp: Checkpoint, now: dt.datetime) -> None:
    """Inside a transition that holds the pending row: if its SLA passed unmarked (decided
    between the due time and the next timer tick or sweep, or expired at a deadline equal to
    its SLA), mark it now, before the status changes, so the breach is neither lost nor
    marked twice."""
    if cp.status == Status.PENDING and _sla_late(cp, now):
        _sla_mark([cp], now)


def checkpoint_sla_breach(checkpoint_id, *, now: dt.datetime | None = None) -> bool:
    """Mark one pending checkpoint whose SLA due time has passed as breached (once). Returns
    False when there is nothing to mark (decided in time, already marked, not due yet)."""
    now = now or timezone.now()
    with audit.atomic():
        rows = list(_sla_overdue(now).select_for_update(of=("self",)).filter(pk=checkpoint_id))
        return bool(_sla_mark(rows, now))


def checkpoint_sla_breach_batch(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """`checkpoint_sla_breach` for up to `limit` due checkpoints in one transaction: one
    UPDATE, one audit append, a signal per checkpoint. Rows are locked (PostgreSQL: SKIP
    LOCKED, a row being decided is left for the next round) and the update is conditional on
    still being pending and unmarked, so each breach is marked exactly once however many
    sweeps run. Returns how many were marked."""
    now = now or timezone.now()
    with audit.atomic():
        qs = _sla_overdue(now).order_by("sla_due_at")
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        return _sla_mark(list(qs[:limit]), now, batch=True)
