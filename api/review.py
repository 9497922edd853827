"""Endpoints for people (a session with CSRF, or a personal API token): their queue and their
decisions. They call the same selectors and the same transition as the review pages."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.response import Response

from api.idempotency import IdempotentMixin
from api.pagination import QueuePagination
from api.permissions import IsPerson
from api.serializers import DecisionInSerializer, DecisionResultSerializer, QueueItemSerializer
from approvals import selectors
from approvals.credentials import credential_for
from approvals.models import Decision
from approvals.receipts import await_sealed
from approvals.representations import checkpoint_data, queue_item_data
from approvals.transitions import checkpoint_decide, checkpoint_edit_check


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


@extend_schema_view(
    post=extend_schema(
        operation_id="checkpoints_decide",
        tags=["review"],
        summary="Decide a checkpoint",
        description="approve, reject (with a reason), modify (approve edited args) or answer. "
        "One vote; the checkpoint resolves when its stage's quorum is reached. 409 names "
        "whoever decided first.",
        request=DecisionInSerializer,
        responses={200: DecisionResultSerializer},
    )
)
class DecisionView(IdempotentMixin, generics.GenericAPIView):
    """Decide a checkpoint (the same transition as the review page)."""

    permission_classes = [IsPerson]
    serializer_class = DecisionInSerializer

    def post(self, request, pk):
        data = DecisionInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = self._valid = data.validated_data
        # An edit's schema check can take up to a second: before the request's transaction
        # (on SQLite, the database's write lock) begins; only on a checkpoint they may see.
        self._checked = checkpoint_edit_check(pk, v["outcome"], v["action"], viewer=request.user)
        return super().post(request, pk)

    def perform_post(self, request, pk):
        user = request.user
        v = self._valid
        result = checkpoint_decide(
            pk,
            user,
            v["outcome"],
            comment=v["comment"],
            action=v["action"],
            answer=v["answer"],
            channel=channel_for(request),
            seen_action_sha256=v["action_sha256"],
            credential=credential_for(request),
            checked=self._checked,
            # 404 for what they may not see: checked by the read that locks the row.
            hidden_is_missing=True,
        )
        cp = result.checkpoint
        return Response(
            {
                "resolved": result.resolved,
                "stage_advanced": result.stage_advanced,
                # The checkpoint as the transition left it, with the vote it just recorded.
                # A resolving vote: its ledger event (and, sync mode, its seq and receipt).
                "checkpoint": checkpoint_data(
                    cp,
                    last_vote=result.decision,
                    artifacts=result.artifacts,
                    event=await_sealed(cp),
                ),
            }
        )
