"""How checkpoints look over the API, to agents (GET/wait/webhooks) and to reviewers (queue).

The representations are built by plain functions (`checkpoint_data`, ...): on a 2-core box
the serializer is a large share of a request's CPU, and these run on every create, wait and
webhook. The DRF serializer classes below describe exactly the same shapes for the OpenAPI
schema (and the schemathesis test checks every response against it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from approvals.models import Artifact, Checkpoint, Decision, Risk, action_sha256

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


def decision_data(cp: Checkpoint, last_vote: Decision | None) -> dict[str, Any] | None:
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
    return {
        "outcome": outcome,
        "action": cp.final_action if cp.status == S.APPROVED else None,
        "action_sha256": cp.final_action_sha256 or None,
        "answer": cp.answer or None,
        "comment": comment,
        "decided_by": cp.resolved_by.get_username() if cp.resolved_by_id else None,
        "decided_at": iso(cp.resolved_at),
    }


def under_review(cp: Checkpoint) -> dict[str, Any]:
    """The version of the action reviewers are voting on now (the proposal, or the latest
    edit in a quorum) and its fingerprint, which a decision sends back as `action_sha256`."""
    current = cp.final_action or cp.action
    return {"current_action": current, "current_action_sha256": action_sha256(current)}


def checkpoint_data(
    cp: Checkpoint,
    *,
    artifacts: list[Artifact] | None = None,
    last_vote: Decision | None = None,
    agent_slug: str | None = None,
) -> dict[str, Any]:
    """The full checkpoint. Pass `artifacts`/`last_vote` when already loaded; otherwise they
    are queried (artifacts always, the vote only for resolved checkpoints)."""
    if artifacts is None:
        artifacts = list(Artifact.objects.filter(checkpoint=cp).order_by("created_at", "name"))
    if last_vote is None and cp.status in (Checkpoint.Status.APPROVED, Checkpoint.Status.ANSWERED):
        last_vote = cp.decisions.order_by("-created_at", "-id").first()
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
        },
        "review_url": review_url(cp.id),
        "artifacts": [artifact_data(a) for a in artifacts],
        "decision": decision_data(cp, last_vote),
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
    }


# --- schema descriptions (OpenAPI) ---------------------------------------------------------


class ActionSerializer(serializers.Serializer):
    tool = serializers.CharField(max_length=200, help_text="The tool the agent wants to call.")
    args = serializers.DictField(
        required=False, default=dict, help_text="Its arguments, as JSON (types are kept)."
    )


class StageSerializer(serializers.Serializer):
    role = serializers.CharField()
    approvals = serializers.IntegerField()


class RoutedToSerializer(serializers.Serializer):
    roles = serializers.ListField(child=serializers.CharField())
    stages = StageSerializer(many=True)
    stage = serializers.IntegerField(help_text="Index of the current stage.")
    current_role = serializers.CharField()
    approvals_needed = serializers.IntegerField()
    escalated = serializers.BooleanField()
    policy = serializers.CharField(allow_null=True)


class ArtifactOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    ref = serializers.CharField(help_text="artifact://<uuid>")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Artifact.Kind.choices)
    content_type = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    content_url = serializers.URLField()
    created_at = serializers.DateTimeField()
    content = serializers.CharField(
        allow_null=True,
        required=False,
        help_text=f"Inline text for small text artifacts (≤ {INLINE_IN_RESPONSE_LIMIT} bytes).",
    )


DECISION_OUTCOMES = ["approve", "modify", "reject", "answer", "expired", "cancelled"]


class DecisionOutSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=DECISION_OUTCOMES)
    action = serializers.JSONField(
        allow_null=True, help_text="The action as approved (edited if outcome is modify)."
    )
    action_sha256 = serializers.CharField(allow_null=True)
    answer = serializers.CharField(allow_null=True)
    comment = serializers.CharField(allow_blank=True, help_text="The reviewer's reason.")
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)


class CheckpointOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    run = serializers.UUIDField()
    agent = serializers.CharField()
    kind = serializers.ChoiceField(choices=Checkpoint.Kind.choices)
    status = serializers.ChoiceField(choices=Checkpoint.Status.choices)
    title = serializers.CharField()
    summary = serializers.CharField(allow_blank=True)
    action = serializers.JSONField(help_text="The action as the agent proposed it.")
    current_action = serializers.JSONField(
        help_text="The version under review now (after edits in a quorum); once approved, "
        "what runs."
    )
    current_action_sha256 = serializers.CharField()
    context = serializers.JSONField()
    risk = serializers.ChoiceField(choices=Risk.choices)
    options = serializers.JSONField()
    role_hint = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()
    routed_to = RoutedToSerializer()
    review_url = serializers.URLField()
    artifacts = ArtifactOutSerializer(many=True)
    decision = DecisionOutSerializer(allow_null=True)


class QueueItemSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    run = serializers.UUIDField()
    agent = serializers.CharField()
    kind = serializers.ChoiceField(choices=Checkpoint.Kind.choices)
    title = serializers.CharField()
    summary = serializers.CharField(allow_blank=True)
    action = serializers.JSONField()
    current_action = serializers.JSONField()
    current_action_sha256 = serializers.CharField()
    risk = serializers.ChoiceField(choices=Risk.choices)
    status = serializers.ChoiceField(choices=Checkpoint.Status.choices)
    current_role = serializers.CharField()
    stage = serializers.IntegerField()
    approvals_needed = serializers.IntegerField()
    deadline = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    claimed_by = serializers.CharField(allow_null=True)
    review_url = serializers.URLField()


class DecisionInSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=Decision.Outcome.choices)
    comment = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=10_000,
        help_text="Required for reject: the agent reads it to decide what to do instead.",
    )
    action = serializers.JSONField(
        required=False,
        default=None,
        help_text='For modify: the edited action, {"args": {...}} (the tool cannot change).',
    )
    answer = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=10_000,
        help_text="For answer (question checkpoints).",
    )
    action_sha256 = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        default="",
        help_text="current_action_sha256 of the version you reviewed: if another reviewer "
        "edited the action since, the decision is refused with 409 instead of approving a "
        "version you did not see.",
    )


class DecisionResultSerializer(serializers.Serializer):
    resolved = serializers.BooleanField(help_text="False while more approvals are needed.")
    stage_advanced = serializers.BooleanField()
    checkpoint = CheckpointOutSerializer()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, the body of every error response."""

    type = serializers.CharField(default="about:blank")
    title = serializers.CharField()
    status = serializers.IntegerField()
    code = serializers.CharField(help_text="Machine-readable: invalid, not_found, conflict, ...")
    detail = serializers.JSONField(help_text="Human-readable explanation.")
    errors = serializers.JSONField(
        required=False, help_text="Validation errors: field → messages (nested for objects)."
    )
    current_status = serializers.CharField(
        required=False, allow_null=True, help_text="409: the state the object is in."
    )
    winner = serializers.CharField(
        required=False, allow_null=True, help_text="409: who or what got there first."
    )
    at = serializers.DateTimeField(required=False, allow_null=True, help_text="409: when.")
    retry_after = serializers.IntegerField(required=False, help_text="429: seconds to wait.")
