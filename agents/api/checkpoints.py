"""/checkpoints/: an agent asks a human (create), reads the outcome (retrieve, list) or
withdraws its request (cancel). Long-poll waiting is in wait.py."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from agents.api.authentication import is_agent
from agents.api.base import checkpoints_visible_to
from agents.api.idempotency import HEADER, IdempotentMixin
from agents.api.permissions import IsAgent, IsAgentOrHuman
from agents.api.serializers import (
    ARTIFACT_REF,
    CheckpointCancelSerializer,
    CheckpointCreateSerializer,
    status_filter,
)
from agents.models import Run
from agents.services import request_checkpoint
from approvals.api.serializers import CheckpointOutSerializer, checkpoint_data
from approvals.audit import Actor
from approvals.exceptions import Conflict
from approvals.models import Artifact, Checkpoint
from approvals.transitions import ArtifactInput, checkpoint_cancel
from hitlportal.pagination import NewestFirstPagination


def load_checkpoint(user, pk) -> Checkpoint:
    cp = (
        checkpoints_visible_to(user)
        .select_related("agent", "policy", "resolved_by")
        .filter(pk=pk)
        .first()
    )
    if cp is None:
        raise NotFound("No such checkpoint.")
    return cp


def _artifact_inputs(agent, items: list[dict]) -> list[ArtifactInput]:
    result, errors = [], []
    for item in items:
        if "ref" in item:
            artifact_id = ARTIFACT_REF.match(item["ref"]).group(1)
            artifact = Artifact.objects.filter(
                pk=artifact_id, agent=agent, checkpoint__isnull=True
            ).first()
            if artifact is None:
                errors.append({"ref": [f"No unattached artifact {item['ref']} of yours."]})
                continue
            result.append(ArtifactInput(name=item["name"], kind=item["kind"], ref=artifact))
        else:
            result.append(
                ArtifactInput(
                    name=item["name"],
                    kind=item["kind"],
                    content=item["content"],
                    content_type=item.get("content_type", ""),
                )
            )
        errors.append({})
    if any(errors):
        raise serializers.ValidationError({"artifacts": errors})
    return result


@extend_schema_view(
    get=extend_schema(
        operation_id="checkpoints_list",
        tags=["checkpoints"],
        parameters=[
            OpenApiParameter("status", str, enum=Checkpoint.Status.values),
            OpenApiParameter("run", str),
        ],
    ),
    post=extend_schema(
        operation_id="checkpoints_create",
        tags=["checkpoints"],
        summary="Ask a human",
        description="Creates a pending checkpoint on one of your runs (the run becomes "
        "`waiting`), routed by policy. Learn the decision by webhook, by "
        "`GET /checkpoints/{id}/wait`, or by polling `GET /checkpoints/{id}/`.",
        request=CheckpointCreateSerializer,
        responses={201: CheckpointOutSerializer},
    ),
)
class CheckpointListCreateView(IdempotentMixin, generics.ListAPIView):
    permission_classes = [IsAgentOrHuman]
    serializer_class = CheckpointOutSerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        qs = checkpoints_visible_to(self.request.user).select_related(
            "agent", "policy", "resolved_by"
        )
        params = self.request.query_params
        status_value = status_filter(params, Checkpoint.Status.values)
        if status_value:
            qs = qs.filter(status=status_value)
        if params.get("run"):
            try:
                qs = qs.filter(run_id=serializers.UUIDField().to_internal_value(params["run"]))
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"run": exc.detail}) from None
        return qs

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([checkpoint_data(cp) for cp in page])

    def perform_post(self, request, *args, **kwargs):
        if not is_agent(request.user):
            raise PermissionDenied(IsAgent.message)
        data = CheckpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        agent = request.user.agent
        run = Run.objects.filter(pk=v["run"], agent=agent).first()
        if run is None:
            raise serializers.ValidationError({"run": ["No such run of yours."]})
        if run.status in Run.FINISHED:
            raise Conflict(
                f"Run is {run.status}; start a new run to ask again.",
                status=run.status,
                winner=run.status,
                at=run.finished_at,
            )
        run.agent = agent
        artifacts = _artifact_inputs(agent, v.get("artifacts", []))
        key = request.headers.get(HEADER, "")
        if key and Checkpoint.objects.filter(agent=agent, idempotency_key=key).exists():
            # Only possible once the idempotency record was purged (48 h): the checkpoint's own
            # unique key outlives it.
            raise Conflict(
                f"A checkpoint was already created with Idempotency-Key {key!r} (more than "
                "48 h ago); use a new key.",
                status="exists",
            )
        cp = request_checkpoint(
            run,
            Actor.for_agent(agent),
            title=v["title"],
            kind=v["kind"],
            summary=v["summary"],
            action=dict(v["action"]) if v.get("action") else {},
            context=v.get("context") or {},
            risk=v["risk"],
            options=v["options"],
            role_hint=v["role_hint"],
            expires_in=v.get("expires_in"),
            idempotency_key=key,
            artifacts=artifacts,
        )
        return Response(
            # No artifacts sent: none to query (this runs while the audit-chain lock is held).
            checkpoint_data(cp, agent_slug=agent.slug, artifacts=None if artifacts else []),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/checkpoints/{cp.id}/"},
        )


class CheckpointDetailView(generics.GenericAPIView):
    permission_classes = [IsAgentOrHuman]
    serializer_class = CheckpointOutSerializer

    @extend_schema(operation_id="checkpoints_retrieve", tags=["checkpoints"])
    def get(self, request, pk):
        return Response(checkpoint_data(load_checkpoint(request.user, pk)))


@extend_schema_view(
    post=extend_schema(
        operation_id="checkpoints_cancel",
        tags=["checkpoints"],
        summary="Withdraw a pending request",
        description="409 (naming the winner) if it was already decided, expired or cancelled.",
        request=CheckpointCancelSerializer,
        responses={200: CheckpointOutSerializer},
    )
)
class CheckpointCancelView(IdempotentMixin, generics.GenericAPIView):
    permission_classes = [IsAgent]
    serializer_class = CheckpointCancelSerializer

    def perform_post(self, request, pk):
        data = CheckpointCancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        agent = request.user.agent
        load_checkpoint(request.user, pk)
        reason = data.validated_data["reason"] or f"withdrawn by agent {agent.slug}"
        checkpoint_cancel(pk, Actor.for_agent(agent), reason=reason)
        return Response(checkpoint_data(load_checkpoint(request.user, pk)))
