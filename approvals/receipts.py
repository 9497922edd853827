"""Exact-action receipts: what an approval lets an agent do, once.

When a checkpoint is approved (`transitions._resolve`), `receipt_issue` stores a receipt in the
same transaction: the checkpoint, the sha256 of the action as approved (edits included:
`{"tool", "args"}` in canonical JSON), the artifacts' digests, the routing policy, the
deciders, an expiry and a nonce. Its token (`receipt_token`) is signed with the ledger key
once the approval event has its ledger sequence number, which the token carries too. Reading
a token never waits: an edge that must hand one out (the long-poll answer, the webhook, the
decision response, the hosted runtime) first calls `await_sealed`.

Right before the side effect the agent (the hosted runtime, or an external agent through
`POST /api/v1/receipts/redeem/`) redeems it with the action it is about to run: a receipt
that is forged, expired, already used, or for another action is refused (`ReceiptRefused`,
409 at the API), and the redemption is an audit event. Of two concurrent redeemers exactly
one wins (conditional update on `redeemed_at IS NULL`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from approvals.models import Artifact, Checkpoint, Decision
from audit import events as audit
from audit.events import Actor, AuditVerb
from audit.models import AuditEvent
from core.canonical import action_sha256
from core.exceptions import Conflict, NotAllowed
from core.ledger import receipts as tokens
from core.ledger.heads import origin
from core.ledger.sequencer import ensure_sequenced
from core.ledger.verify import public_keys
from core.models import Receipt

SUBJECT = "checkpoint:{}"


class ReceiptRefused(Conflict):
    """The receipt does not permit this action now (expired, used, another action)."""


class ReceiptNotReady(RuntimeError):
    """The approval is not in the ledger yet (the sequencer lags): try again shortly."""


def executed_action(action: dict | None) -> dict:
    """What a receipt binds: the tool and its arguments, nothing else."""
    action = action or {}
    return {"tool": action.get("tool"), "args": action.get("args") or {}}


def executed_sha256(action: dict | None) -> str:
    """The digest a receipt binds (its claim `action_sha256`): of the tool and its arguments
    only. Not `core.canonical.action_sha256(action)`, the digest of the whole action (with
    its description and anything else the agent sent) that checkpoints and decisions carry."""
    return action_sha256(executed_action(action))


def receipt_issue(
    cp: Checkpoint,
    now: dt.datetime,
    *,
    deciders: list[str] | None = None,
    artifacts: list[Artifact] | None = None,
) -> Receipt:
    """Inside the approving transaction (`cp` already approved, `final_action` set).
    `deciders`: who approved, when the caller knows (else read from the votes). `artifacts`:
    the checkpoint's, in order (created_at, name), when the caller read them."""
    if deciders is None:
        deciders = list(
            Decision.objects.filter(
                checkpoint=cp, outcome__in=[Decision.Outcome.APPROVE, Decision.Outcome.MODIFY]
            )
            .order_by("stage", "created_at")
            .values_list("reviewer__username", flat=True)
        )
        deciders = [name for name in deciders if name]
    if artifacts is None:
        digests = (
            Artifact.objects.filter(checkpoint=cp)
            .order_by("created_at", "name")
            .values_list("pk", "sha256")
        )
    else:
        digests = [(a.pk, a.sha256) for a in artifacts]
    bound = [{"ref": f"artifact://{pk}", "sha256": sha} for pk, sha in digests]
    final = cp.final_action or cp.action
    claims = {
        "checkpoint": str(cp.pk),
        "run": str(cp.run_id),
        "agent": cp.agent.slug,
        "tool": (final or {}).get("tool"),
        "action_sha256": executed_sha256(final),
        "artifacts": bound,
        "policy": {
            "id": cp.policy_id,
            "name": cp.policy.name if cp.policy_id else None,
            # The published version that routed it (and, for an automatic approval, decided).
            "version": cp.policy_version.number if cp.policy_version_id else None,
        },
        "deciders": deciders,
        "decided_at": now.isoformat(),
    }
    return Receipt.objects.create(
        subject=SUBJECT.format(cp.pk),
        nonce=secrets.token_hex(16),
        claims=claims,
        issued_at=now,
        expires_at=now + dt.timedelta(seconds=settings.HITL_RECEIPT_TTL),
    )


def resolution_event(cp: Checkpoint) -> Event | None:
    """(event id, seq) of the event that resolved `cp`."""
    return (
        AuditEvent.objects.filter(
            target_type="approvals.checkpoint",
            target_id=str(cp.pk),
            verb=AuditVerb.for_status(cp.status),
        )
        .values_list("pk", "seq")
        .first()
    )


Event = tuple[int, int | None]  # an audit event's (id, seq): seq None until sequenced


def _resolution_among(rows: list[AuditEvent], cp: Checkpoint) -> Event | None:
    """The event that resolved `cp` among rows just inserted (no query), if it is there."""
    verb, target = AuditVerb.for_status(cp.status), str(cp.pk)
    for row in rows:
        is_target = row.target_type == "approvals.checkpoint" and row.target_id == target
        if row.pk and is_target and row.verb == verb:
            return row.pk, row.seq
    return None


@dataclass
class Sealed:
    token: str
    seq: int
    event: int


def await_sealed(cp: Checkpoint, *, timeout: float | None = None) -> Event | None:
    """Before showing a resolution someone waits for (the long-poll answer, a webhook, the
    decision response, the hosted runtime's receipt): get its event into the ledger, so that
    the representation built next carries its seq and, for an approval, its signed receipt.
    Returns the event, (id, seq), to pass on as `checkpoint_data(event=...)`: seq still None
    if the sequencer lags; None for a pending checkpoint.

    Inside the resolving transaction it first inserts the events deferred so far
    (`audit.flush`), so the event exists to be named. Then `ensure_sequenced`: outside a
    transaction it runs a batch itself or waits for the standing sequencer (up to `timeout`,
    default `core.ledger.sequencer.SEQ_WAIT`). Inside one it does not wait: no sequencer sees the
    transaction's own events before it commits; sync mode (tests) sequences them in-process."""
    if cp.status == Checkpoint.Status.PENDING:
        return None
    event = _resolution_among(audit.flush(), cp) or resolution_event(cp)
    if event is None or event[1] is not None:
        return event
    if connection.in_atomic_block and not settings.HITL_LEDGER_SYNC:
        return event
    pk = event[0]
    return pk, ensure_sequenced([pk], timeout).get(pk)


def receipt_token(cp: Checkpoint, *, event: Event | None = None) -> Sealed | None:
    """The signed receipt of an approved checkpoint, carrying its approval's ledger seq; None
    while the approval is not sequenced (see `await_sealed`) or it has no receipt. `event`:
    (event id, seq) of the approval when already read. Reads only."""
    receipt = Receipt.objects.filter(subject=SUBJECT.format(cp.pk)).first()
    if receipt is not None and event is None:
        event = resolution_event(cp)
    if receipt is None or event is None or event[1] is None:
        return None
    pk, seq = event
    claims = {
        "typ": "hitl-receipt/v1",
        "iss": origin(),
        "rid": str(receipt.id),
        "nonce": receipt.nonce,
        "iat": int(receipt.issued_at.timestamp()),
        "exp": int(receipt.expires_at.timestamp()),
        "seq": seq,
        "event": pk,
        **receipt.claims,
    }
    return Sealed(tokens.sign(claims), seq, pk)


def _open(token: str) -> tuple[dict[str, Any], Receipt]:
    """Signature, then the stored receipt it names (same nonce)."""
    claims = tokens.open_token(token, public_keys())
    receipt = Receipt.objects.filter(pk=claims.get("rid"), nonce=claims.get("nonce")).first()
    if receipt is None:
        raise tokens.InvalidReceipt("no such receipt")
    return claims, receipt


def _refusal(claims: dict, receipt: Receipt, action: dict | None, now: dt.datetime) -> str:
    if receipt.redeemed_at is not None:
        return "redeemed"
    if receipt.expires_at <= now:
        return "expired"
    if action is not None and executed_sha256(action) != claims["action_sha256"]:
        return "action_mismatch"
    return ""


_MESSAGES = {
    "redeemed": "This receipt was already redeemed (by {by} at {at}).",
    "expired": "This receipt expired at {exp}: ask again.",
    "action_mismatch": "This is not the action that was approved: ask again with it.",
}


_CODES = {
    "redeemed": "receipt_redeemed",
    "expired": "receipt_expired",
    "action_mismatch": "action_mismatch",
}


def _conflict(code: str, claims: dict, receipt: Receipt) -> ReceiptRefused:
    at = receipt.redeemed_at
    text = _MESSAGES[code].format(
        by=receipt.redeemed_by, at=at.isoformat() if at else "", exp=receipt.expires_at.isoformat()
    )
    exc = ReceiptRefused(
        text,
        status="redeemed" if receipt.redeemed_at else code,
        winner=receipt.redeemed_by or "",
        at=at,
    )
    exc.code = _CODES[code]
    return exc


def receipt_check(token: str, action: dict | None = None) -> dict[str, Any]:
    """What `POST /receipts/verify/` answers: the claims, whether it could be redeemed now
    (for `action`, when given), and why not. Raises InvalidReceipt for a forged one."""
    claims, receipt = _open(token)
    problem = _refusal(claims, receipt, action, timezone.now())
    return {
        "valid": not problem,
        "problem": problem or None,
        "claims": claims,
        "redeemed_at": receipt.redeemed_at,
        "redeemed_by": receipt.redeemed_by or None,
        "expires_at": receipt.expires_at,
    }


def check_may_redeem(claims: dict, actor: Actor) -> None:
    """Only the agent whose checkpoint it is spends its receipt: anyone else (a person who may
    see the checkpoint, another agent) would leave the agent unable to act. Others may check
    it (`receipt_check`). Raises NotAllowed."""
    owner = (
        Checkpoint.with_drills.filter(pk=claims.get("checkpoint"))
        .values_list("agent_id", flat=True)
        .first()
    )
    if actor.type != AuditEvent.ActorType.AGENT or owner is None or actor.id != str(owner):
        raise NotAllowed(
            f"Only the agent that asked ({claims.get('agent')}) redeems this receipt; check it "
            "without spending it with POST /api/v1/receipts/verify/.",
            code="not_the_agent",
        )


def receipt_redeem(token: str, action: dict, actor: Actor, *, redeemer: str | None = None) -> dict:
    """Spend the receipt on `action`, as the checkpoint's own agent (`check_may_redeem`).
    Exactly one caller wins; the others (and a second attempt) get ReceiptRefused naming the
    winner. `redeemer`: a stable name for a caller that may retry the same step (the hosted
    runtime's run step), which then gets its own first redemption back instead of a
    refusal."""
    claims, receipt = _open(token)
    check_may_redeem(claims, actor)
    name = redeemer or f"{actor.type}:{actor.label or actor.id}"
    now = timezone.now()
    with audit.atomic():
        problem = _refusal(claims, receipt, action, now)
        if problem == "redeemed" and redeemer and receipt.redeemed_by == redeemer:
            return _redemption(claims, receipt)
        if problem:
            raise _conflict(problem, claims, receipt)
        redemption = {"action_sha256": claims["action_sha256"], "actor": actor.label}
        won = Receipt.objects.filter(
            pk=receipt.pk, redeemed_at__isnull=True, expires_at__gt=now
        ).update(redeemed_at=now, redeemed_by=name, redemption=redemption)
        receipt.refresh_from_db()
        if not won:
            if redeemer and receipt.redeemed_by == redeemer:
                return _redemption(claims, receipt)
            raise _conflict(_refusal(claims, receipt, action, now) or "redeemed", claims, receipt)
        audit.record(
            actor,
            AuditVerb.RECEIPT_REDEEMED,
            ("approvals.checkpoint", claims["checkpoint"]),
            {
                "receipt": str(receipt.pk),
                "approval_seq": claims["seq"],
                "action_sha256": claims["action_sha256"],
                "redeemer": name,
            },
        )
    return _redemption(claims, receipt)


def _redemption(claims: dict, receipt: Receipt) -> dict:
    return {
        "receipt": str(receipt.pk),
        "checkpoint": claims["checkpoint"],
        "action_sha256": claims["action_sha256"],
        "approval_seq": claims["seq"],
        "redeemed_at": receipt.redeemed_at,
        "redeemed_by": receipt.redeemed_by,
    }
