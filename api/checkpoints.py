"""/checkpoints/: an agent asks a human (create), reads the outcome (retrieve, list) or
withdraws its request (cancel). Long-poll waiting is in wait.py; people's decisions in
review.py."""

from __future__ import annotations

import hashlib

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from agents import services
from api.access import note_agent_read, visible_checkpoint, visible_checkpoints
from api.authentication import is_agent
from api.idempotency import HEADER, IdempotentMixin, body_repr_json
from api.pagination import NewestFirstPagination
from api.permissions import IsAgent, IsAgentOrPerson
from api.serializers import (
    CheckpointCancelSerializer,
    CheckpointCreateSerializer,
    CheckpointOutSerializer,
    status_filter,
)
from approvals.models import Checkpoint
from approvals.receipts import await_sealed
from approvals.representations import checkpoint_data, resolution_events
from approvals.services import checkpoint_viewed
from approvals.transitions import checkpoint_cancel
from audit.events import Actor


@extend_schema_view(
    get=extend_schema(
        operation_id="checkpoints_list",
        tags=["checkpoints"],
        parameters=[
            OpenApiParameter("status", str, enum=Checkpoint.Status.values),
            OpenApiParameter("run", OpenApiTypes.UUID),
            OpenApiParameter("external_id", str, description="Your own id for the request."),
        ],
    ),
    post=extend_schema(
        operation_id="checkpoints_create",
        tags=["checkpoints"],
        summary="Ask a human",
        description="Creates a pending checkpoint on one of your runs (the run becomes "
        "`waiting`), routed by policy. Learn the decision by webhook, by "
        "`GET /checkpoints/{id}/wait`, or by polling `GET /checkpoints/{id}/`. With an "
        "`external_id` already used for the same request: 200 with that checkpoint. A policy "
        "may decide it at once (`decision.automatic`): the response then carries the "
        "decision. A halted agent gets 423.",
        request=CheckpointCreateSerializer,
        responses={201: CheckpointOutSerializer, 200: CheckpointOutSerializer},
    ),
)
class CheckpointListCreateView(IdempotentMixin, generics.ListAPIView):
    permission_classes = [IsAgentOrPerson]
    serializer_class = CheckpointOutSerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        qs = visible_checkpoints(self.request.user).select_related(
            "agent", "policy", "policy_version", "resolved_by"
        )
        params = self.request.query_params
        status_value = status_filter(params, Checkpoint.Status.values)
        if status_value:
            qs = qs.filter(status=status_value)
        if "run" in params:
            try:
                qs = qs.filter(run_id=serializers.UUIDField().to_internal_value(params["run"]))
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"run": exc.detail}) from None
        if "external_id" in params:
            qs = qs.filter(external_id=params["external_id"])
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
        run = services.own_run(agent, v["run"])  # its agent row read in this transaction
        artifacts = services.artifact_inputs(agent, v.get("artifacts", []))
        cp, created = services.ask_once(
            run,
            data.to_ask(
                idempotency_key=request.headers.get(HEADER, ""),
                artifacts=artifacts,
                request_sha256=request_digest(request) if v["external_id"] else "",
            ),
            actor=Actor.for_agent(agent),
            agent_current=True,
        )
        return Response(
            # No artifacts sent: none to query. Decided by a policy at once: the response
            # names its ledger event (`await_sealed`, nothing for a pending one).
            checkpoint_data(
                cp,
                agent_slug=agent.slug,
                artifacts=None if artifacts or not created else [],
                event=await_sealed(cp),
            ),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers={"Location": f"/api/v1/checkpoints/{cp.id}/"},
        )


def request_digest(request) -> str:
    """What makes two requests under one external_id "the same": their canonical bodies."""
    return hashlib.sha256(body_repr_json(request).encode()).hexdigest()


class CheckpointDetailView(generics.GenericAPIView):
    permission_classes = [IsAgentOrPerson]
    serializer_class = CheckpointOutSerializer

    @extend_schema(operation_id="checkpoints_retrieve", tags=["checkpoints"])
    def get(self, request, pk):
        cp = visible_checkpoint(request.user, pk)
        if is_agent(request.user):
            note_agent_read(cp)
        else:
            checkpoint_viewed(cp, request.user, channel="api")
        return Response(checkpoint_data(cp))


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
