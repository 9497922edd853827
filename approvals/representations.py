"""How checkpoints look to agents and programs: the JSON of the API (GET, create, long-poll),
of webhooks, and of the reviewers' queue endpoint.

Pure functions of rows: they read, never write or wait. A resolution's ledger seq and
receipt are shown once the sequencer has logged it; an edge that must hand them out (the
long-poll answer, a webhook, the decision response) first calls
`approvals.receipts.await_sealed` and passes the event it returns.

Built by plain functions, not DRF serializers: on a 2-core box a serializer is a large share
of a request's CPU, and these run on every create, wait and webhook. The serializer classes in
`api/serializers.py` describe exactly the same shapes for the OpenAPI schema (and the
schemathesis test checks every response against it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.urls import reverse

from approvals import receipts, rules
from approvals.models import Artifact, Checkpoint, Decision
from audit.models import AuditEvent, AuditVerb
from core.canonical import action_sha256

# Inline artifacts up to this size are included in checkpoint responses; bigger ones are
# fetched from /api/v1/artifacts/{id}/content/.
INLINE_IN_RESPONSE_LIMIT = 64 * 1024


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def review_url(checkpoint_id) -> str:
    """Where a human reviews it: the portal's review page."""
    return settings.SITE_URL + reverse("admin:approvals_checkpoint_review", args=[checkpoint_id])


def artifact_data(artifact: Artifact, *, with_content: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(artifact.id),
        "ref": artifact.ref,
        "name": artifact.name,
        "kind": artifact.kind,
        "content_type": artifact.content_type,
        "sha256": artifact.sha256,
        "size": artifact.size,
        "content_url": f"{settings.SITE_URL}/api/v1/artifacts/{artifact.id}/content/",
        "created_at": iso(artifact.created_at),
    }
    if with_content:
        inline = (
            artifact.inline
            if artifact.inline and artifact.size <= INLINE_IN_RESPONSE_LIMIT
            else None
        )
        data["content"] = inline
    return data


def resolution_events(checkpoints: list[Checkpoint]) -> dict[str, tuple[int, int | None]]:
    """checkpoint id → (event id, seq) of the events that resolved them: one query for a page
    of a list."""
    resolved = [cp for cp in checkpoints if cp.status != Checkpoint.Status.PENDING]
    if not resolved:
        return {}
    rows = AuditEvent.objects.filter(
        target_type="approvals.checkpoint",
        target_id__in=[str(cp.pk) for cp in resolved],
        verb__in=[AuditVerb.for_status(s) for s in Checkpoint.RESOLVED],
    ).values_list("target_id", "pk", "seq")
    return {target: (pk, seq) for target, pk, seq in rows}


_UNKNOWN = object()


def ledger_fields(cp: Checkpoint, *, event: Any = _UNKNOWN) -> dict[str, Any]:
    """Where the resolution is in the ledger (`seq` null for the moment between commit and
    the sequencer: the merge delay) and, for a sequenced approval, its signed receipt.
    `event`: (event id, seq) when already read (lists, `receipts.await_sealed`)."""
    if event is _UNKNOWN:
        event = receipts.resolution_event(cp)
    if event is None:
        return {"ledger": None, "receipt": None}
    pk, seq = event
    sealed = None
    if cp.status == Checkpoint.Status.APPROVED and seq is not None:
        sealed = receipts.receipt_token(cp, event=event)
    return {
        "ledger": {
            "event": pk,
            "seq": seq,
            "proof_url": f"{settings.SITE_URL}/api/v1/ledger/proof/inclusion?event={pk}",
        },
        "receipt": sealed.token if sealed else None,
    }


def decision_data(
    cp: Checkpoint, last_vote: Decision | None, *, event: Any = _UNKNOWN
) -> dict[str, Any] | None:
    """What the agent needs to act: the outcome, the action as approved (maybe edited), the
    answer, the reason, who and when."""
    S = Checkpoint.Status
    if cp.status == S.PENDING:
        return None
    outcome = {
        S.APPROVED: "approve",
        S.REJECTED: "reject",
        S.ANSWERED: "answer",
        S.EXPIRED: "expired",
        S.CANCELLED: "cancelled",
    }[cp.status]
    if cp.status == S.APPROVED and cp.final_action is not None and cp.final_action != cp.action:
        outcome = "modify"
    if cp.status in (S.APPROVED, S.ANSWERED):
        comment = last_vote.comment if last_vote else ""
    else:
        comment = cp.resolution_reason
    version = last_vote.policy_version if last_vote and last_vote.policy_version_id else None
    return {
        "outcome": outcome,
        "action": cp.final_action if cp.status == S.APPROVED else None,
        "action_sha256": cp.final_action_sha256 or None,
        "answer": cp.answer or None,
        "comment": comment,
        "decided_by": cp.resolved_by.get_username() if cp.resolved_by_id else None,
        "decided_by_policy": (
            {"name": version.get("name"), "version": version.number} if version else None
        ),
        "automatic": version is not None,
        "decided_at": iso(cp.resolved_at),
        **ledger_fields(cp, event=event),
    }


def under_review(cp: Checkpoint) -> dict[str, Any]:
    """The version of the action reviewers are voting on now (the proposal, or the latest
    edit in a quorum) and its fingerprint, which a decision sends back as `action_sha256`."""
    current = cp.final_action or cp.action
    return {"current_action": current, "current_action_sha256": action_sha256(current)}


DECIDED = (Checkpoint.Status.APPROVED, Checkpoint.Status.ANSWERED, Checkpoint.Status.REJECTED)


def policy_version_data(cp: Checkpoint) -> dict[str, Any] | None:
    version = cp.policy_version if cp.policy_version_id else None
    return {"name": version.get("name"), "version": version.number} if version else None


def checkpoint_data(
    cp: Checkpoint,
    *,
    artifacts: list[Artifact] | None = None,
    last_vote: Decision | None = None,
    agent_slug: str | None = None,
    event: Any = _UNKNOWN,
) -> dict[str, Any]:
    """The full checkpoint. Pass `artifacts`/`last_vote` when already loaded; otherwise they
    are queried (artifacts always, the vote only for resolved checkpoints). `event`: the
    resolution's (event id, seq) when already read (`ledger_fields`)."""
    if artifacts is None:
        artifacts = list(Artifact.objects.filter(checkpoint=cp).order_by("created_at", "name"))
    if last_vote is None and cp.status in DECIDED:
        last_vote = (
            cp.decisions.select_related("policy_version").order_by("-created_at", "-id").first()
        )
    return {
        "id": str(cp.id),
        "run": str(cp.run_id),
        "agent": agent_slug or cp.agent.slug,
        "kind": cp.kind,
        "status": cp.status,
        "title": cp.title,
        "summary": cp.summary,
        "action": cp.action,
        **under_review(cp),
        "context": cp.context,
        "risk": cp.risk,
        "confidence": cp.confidence,
        "options": cp.options,
        "role_hint": cp.role_hint,
        "created_at": iso(cp.created_at),
        "deadline": iso(cp.deadline),
        "routed_to": {
            "roles": [s["role"] for s in cp.stages],
            "stages": cp.stages,
            "stage": cp.stage,
            "current_role": cp.current_role,
            "approvals_needed": cp.approvals_needed,
            "escalated": cp.escalated,
            "policy": cp.policy.name if cp.policy_id and cp.policy else None,
            "policy_version": policy_version_data(cp),
        },
        "review_url": review_url(cp.id),
        "artifacts": [artifact_data(a) for a in artifacts],
        "decision": decision_data(cp, last_vote, event=event),
        "external_id": cp.external_id,
        "allowed_outcomes": rules.allowed_outcomes(cp),
        "reject_options": cp.reject_options,
    }


def queue_item_data(cp: Checkpoint) -> dict[str, Any]:
    return {
        "id": str(cp.id),
        "run": str(cp.run_id),
        "agent": cp.agent.slug,
        "kind": cp.kind,
        "title": cp.title,
        "summary": cp.summary,
        "action": cp.action,
        **under_review(cp),
        "risk": cp.risk,
        "status": cp.status,
        "current_role": cp.current_role,
        "stage": cp.stage,
        "approvals_needed": cp.approvals_needed,
        "deadline": iso(cp.deadline),
        "created_at": iso(cp.created_at),
        "claimed_by": cp.claimed_by.get_username() if cp.claim_is_active() else None,
        "review_url": review_url(cp.id),
        "allowed_outcomes": rules.allowed_outcomes(cp),
        "reject_options": cp.reject_options,
    }
