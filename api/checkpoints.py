"""/checkpoints/: an agent asks a human (create), reads the outcome (retrieve, list) or
withdraws its request (cancel). Long-poll waiting is in wait.py; people's decisions in
review.py."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from agents import services
from api.access import visible_checkpoint, visible_checkpoints
from api.authentication import is_agent
from api.idempotency import HEADER, IdempotentMixin
from api.pagination import NewestFirstPagination
from api.permissions import IsAgent, IsAgentOrPerson
from api.serializers import (
    CheckpointCancelSerializer,
    CheckpointCreateSerializer,
    CheckpointOutSerializer,
    status_filter,
)
from approvals.audit import Actor
from approvals.models import Checkpoint
from approvals.representations import checkpoint_data, resolution_events
from approvals.transitions import checkpoint_cancel


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
    permission_classes = [IsAgentOrPerson]
    serializer_class = CheckpointOutSerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        qs = visible_checkpoints(self.request.user).select_related("agent", "policy", "resolved_by")
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
        events = resolution_events(page)  # one query for the page, not one per checkpoint
        return self.get_paginated_response(
            [checkpoint_data(cp, event=events.get(str(cp.pk))) for cp in page]
        )

    def perform_post(self, request, *args, **kwargs):
        if not is_agent(request.user):
            raise PermissionDenied(IsAgent.message)
        data = CheckpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        agent = request.user.agent
        run = services.own_run(agent, v["run"])
        artifacts = services.artifact_inputs(agent, v.get("artifacts", []))
        (cp,) = services.ask(
            run,
            [
                services.Ask(
                    title=v["title"],
                    kind=v["kind"],
                    summary=v["summary"],
                    action=dict(v["action"]) if v.get("action") else {},
                    context=v.get("context") or {},
                    risk=v["risk"],
                    options=v["options"],
                    role_hint=v["role_hint"],
                    expires_in=v.get("expires_in"),
                    idempotency_key=request.headers.get(HEADER, ""),
                    artifacts=artifacts,
                )
            ],
            actor=Actor.for_agent(agent),
        )
        return Response(
            # No artifacts sent: none to query.
            checkpoint_data(cp, agent_slug=agent.slug, artifacts=None if artifacts else []),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/checkpoints/{cp.id}/"},
        )


class CheckpointDetailView(generics.GenericAPIView):
    permission_classes = [IsAgentOrPerson]
    serializer_class = CheckpointOutSerializer

    @extend_schema(operation_id="checkpoints_retrieve", tags=["checkpoints"])
    def get(self, request, pk):
        return Response(checkpoint_data(visible_checkpoint(request.user, pk)))


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
        visible_checkpoint(request.user, pk)
        reason = data.validated_data["reason"] or f"withdrawn by agent {agent.slug}"
        checkpoint_cancel(pk, Actor.for_agent(agent), reason=reason)
        return Response(checkpoint_data(visible_checkpoint(request.user, pk)))
