"""/receipts/: check and redeem an approval's receipt (for agents in any language; the
Python client and the hosted runtime call the same `approvals.receipts` functions). Whoever
may see the checkpoint may check its receipt; only its agent spends it."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from api.access import visible_checkpoint
from api.authentication import is_agent
from api.idempotency import IdempotentMixin
from api.permissions import IsAgentOrPerson
from api.serializers import (
    ReceiptCheckSerializer,
    ReceiptInSerializer,
    ReceiptRedeemInSerializer,
    RedemptionSerializer,
)
from approvals import receipts
from audit.events import Actor
from core.ledger.receipts import InvalidReceipt, open_token
from core.ledger.verify import public_keys


def _visible_claims(principal, token: str) -> dict:
    """The receipt's claims if it is ours and about a checkpoint the caller may see (else
    400 for a forged one, 404 for someone else's)."""
    try:
        claims = open_token(token, public_keys())
    except InvalidReceipt as exc:
        raise serializers.ValidationError({"receipt": [str(exc)]}) from None
    visible_checkpoint(principal, claims.get("checkpoint"))
    return claims


def _actor(principal) -> Actor:
    return Actor.for_agent(principal.agent) if is_agent(principal) else Actor.for_user(principal)


class ReceiptVerifyView(APIView):
    permission_classes = [IsAgentOrPerson]

    @extend_schema(
        operation_id="receipts_verify",
        tags=["receipts"],
        summary="Check a receipt (without spending it)",
        description="Signature, expiry, whether it was redeemed and, with `action`, whether "
        "it is the action that was approved. 400 for a receipt this portal did not sign.",
        request=ReceiptInSerializer,
        responses={200: ReceiptCheckSerializer},
    )
    def post(self, request):
        data = ReceiptInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        _visible_claims(request.user, v["receipt"])
        return Response(receipts.receipt_check(v["receipt"], v.get("action")))


class ReceiptRedeemView(IdempotentMixin, APIView):
    permission_classes = [IsAgentOrPerson]

    @extend_schema(
        operation_id="receipts_redeem",
        tags=["receipts"],
        summary="Redeem a receipt right before acting",
        description="Spends the receipt on `action` (the exact `{tool, args}` you are about to "
        "run), once, and records it in the ledger. Only the agent whose checkpoint it is "
        "redeems: anyone else gets 403 `not_the_agent` (404 if they may not see it) and may "
        "check it with /receipts/verify/. 409 when it was already redeemed (naming "
        "who), has expired, or `action` is not what was approved (codes `receipt_redeemed`, "
        "`receipt_expired`, `action_mismatch`): do not act; ask again.",
        request=ReceiptRedeemInSerializer,
        responses={200: RedemptionSerializer},
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def perform_post(self, request):
        data = ReceiptRedeemInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        _visible_claims(request.user, v["receipt"])
        return Response(
            receipts.receipt_redeem(v["receipt"], dict(v["action"]), _actor(request.user))
        )
