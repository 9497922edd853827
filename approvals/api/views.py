"""Endpoints for people (session with CSRF, or a personal API token): their queue and their
decisions. They call the same selectors and the same transition as the review pages."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import selectors
from approvals.api.serializers import (
    DecisionInSerializer,
    DecisionResultSerializer,
    QueueItemSerializer,
    checkpoint_data,
    queue_item_data,
)
from approvals.models import Checkpoint, Decision
from approvals.transitions import checkpoint_decide
from hitlportal.pagination import QueuePagination


class IsPerson(BasePermission):
    """A real user (not an agent key), active."""

    message = "This endpoint is for people: use a session or a personal API token."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_active
            and not getattr(user, "is_agent", False)
        )


class QueueView(generics.ListAPIView):
    """The caller's review queue: pending checkpoints whose current role is one of theirs
    (everything for managers), soonest deadline first."""

    permission_classes = [IsPerson]
    serializer_class = QueueItemSerializer
    pagination_class = QueuePagination

    def get_queryset(self):
        return selectors.review_queue_for(self.request.user)

    @extend_schema(operation_id="queue_list", tags=["review"])
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([queue_item_data(cp) for cp in page])


def channel_for(request) -> str:
    agent = request.headers.get("User-Agent", "")
    return Decision.Channel.CLI if agent.startswith("hitl-cli") else Decision.Channel.API


decision_schema = extend_schema(
    operation_id="checkpoints_decide",
    tags=["review"],
    summary="Decide a checkpoint",
    description="approve, reject (with a reason), modify (approve edited args) or answer. One "
    "vote; the checkpoint resolves when its stage's quorum is reached. 409 names whoever "
    "decided first.",
    request=DecisionInSerializer,
    responses={200: DecisionResultSerializer},
)


@extend_schema_view(post=decision_schema)
class DecisionView(APIView):
    """Decide a checkpoint (the same transition as the review page)."""

    permission_classes = [IsPerson]

    def post(self, request, pk):
        data = DecisionInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user
        selectors.checkpoint_get_for_reviewer(user, pk)  # 404 for what they may not see
        v = data.validated_data
        result = checkpoint_decide(
            pk,
            user,
            v["outcome"],
            comment=v["comment"],
            action=v["action"],
            answer=v["answer"],
            channel=channel_for(request),
            seen_action_sha256=v["action_sha256"],
        )
        cp = Checkpoint.objects.select_related("agent", "policy", "resolved_by").get(pk=pk)
        return Response(
            {
                "resolved": result.resolved,
                "stage_advanced": result.stage_advanced,
                "checkpoint": checkpoint_data(cp),
            },
            status=status.HTTP_200_OK,
        )
