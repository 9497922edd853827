"""/ledger/: the audit trail as a transparency log. Heads, keys and consistency proofs are
public (they hold hashes, no content: witnesses fetch them without credentials); inclusion
proofs carry the event itself and are for whoever may see what it is about; the entries
(`hitl verify --full`) are for managers, who audit everything."""

from __future__ import annotations

from django.db.models import Max
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.access import visible_checkpoints, visible_runs
from api.authentication import is_agent
from api.permissions import IsAgentOrPerson
from api.serializers import (
    ConsistencyProofSerializer,
    InclusionProofSerializer,
    LedgerEntriesSerializer,
    LedgerKeysSerializer,
    TreeHeadSerializer,
)
from audit.models import AuditEvent
from core.exceptions import Conflict
from core.ledger import heads, proofs
from core.ledger.keys import b64, key_id, raw_public
from core.ledger.sequencer import LedgerCorrupt
from core.ledger.snapshot import read_snapshot
from core.ledger.verify import public_keys
from core.roles import is_manager

MAX_ENTRIES = 1000


def _int(params, name: str, *, required: bool = False) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise serializers.ValidationError({name: ["This parameter is required."]})
        return None
    try:
        value = int(raw)
    except ValueError:
        raise serializers.ValidationError({name: ["A whole number."]}) from None
    if not 0 <= value < 2**62:  # beyond any log; keeps bigint columns from overflowing
        raise serializers.ValidationError({name: ["A whole number from 0 to 2^62."]})
    return value


def _proof(fn, *args):
    try:
        return fn(*args)
    except proofs.ProofUnavailable as exc:
        raise NotFound(str(exc)) from None
    except LedgerCorrupt as exc:
        raise Conflict(f"The stored log is damaged: {exc}", status="corrupt") from None


def visible_event(principal, pk: int) -> AuditEvent:
    """An audit event the caller may see: managers all; otherwise events about a checkpoint
    or run the caller can see."""
    event = AuditEvent.objects.filter(pk=pk).first()
    if event is not None and not (
        (not is_agent(principal) and is_manager(principal))
        or (
            event.target_type == "approvals.checkpoint"
            and visible_checkpoints(principal).filter(pk=event.target_id).exists()
        )
        or (
            event.target_type == "agents.run"
            and visible_runs(principal).filter(pk=event.target_id).exists()
        )
    ):
        event = None
    if event is None:
        raise NotFound("No such event.")
    return event


class LedgerHeadView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="ledger_head",
        tags=["ledger"],
        summary="The latest signed tree head (or the one of ?tree_size=)",
        parameters=[OpenApiParameter("tree_size", int)],
        responses={200: TreeHeadSerializer},
    )
    def get(self, request):
        head = _proof(proofs.head_of_size, _int(request.query_params, "tree_size"))
        return Response(heads.as_json(head))


class LedgerKeysView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="ledger_keys",
        tags=["ledger"],
        summary="The public keys that sign tree heads and receipts",
        responses={200: LedgerKeysSerializer},
    )
    def get(self, request):
        keys = public_keys()
        current = next(iter(keys))
        return Response(
            {
                "origin": heads.origin(),
                "keys": [
                    {
                        "key_id": key_id(key),
                        "algorithm": "Ed25519",
                        "public_key": b64(raw_public(key)),
                        "current": kid == current,
                    }
                    for kid, key in keys.items()
                ],
            }
        )


class InclusionProofView(APIView):
    permission_classes = [IsAgentOrPerson]

    @extend_schema(
        operation_id="ledger_proof_inclusion",
        tags=["ledger"],
        summary="Proof that an audit event is in the log",
        description="RFC 6962 audit path of the event (`event`: its id, as in a decision's "
        "`ledger.event`) against the latest signed head, or the head of `tree_size`. "
        "`entry` is the exact text its leaf hash covers: hash `0x00 || entry` yourself.",
        parameters=[
            OpenApiParameter("event", int, required=True),
            OpenApiParameter("tree_size", int),
        ],
        responses={200: InclusionProofSerializer},
    )
    def get(self, request):
        params = request.query_params
        with read_snapshot():  # the event as sequenced in the head its proof is for
            event = visible_event(request.user, _int(params, "event", required=True))
            data = _proof(proofs.inclusion, event, _int(params, "tree_size"))
        return Response({**data, "event": event.pk, "entry": event.ledger_entry().decode()})


class ConsistencyProofView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="ledger_proof_consistency",
        tags=["ledger"],
        summary="Proof that an earlier tree is a prefix of a later one",
        description="RFC 6962 consistency proof from the tree of size `from` to the latest "
        "signed head (or the one of size `to`): nothing was changed or removed in between.",
        parameters=[
            OpenApiParameter("from", int, required=True),
            OpenApiParameter("to", int),
        ],
        responses={200: ConsistencyProofSerializer},
    )
    def get(self, request):
        params = request.query_params
        old = _int(params, "from", required=True)
        return Response(_proof(proofs.consistency, old, _int(params, "to")))


class LedgerEntriesView(APIView):
    permission_classes = [IsAgentOrPerson]

    @extend_schema(
        operation_id="ledger_entries",
        tags=["ledger"],
        summary="The log's entries in order (managers): what `hitl verify --full` re-hashes",
        parameters=[
            OpenApiParameter("start", int, description="first seq (default 1)"),
            OpenApiParameter("limit", int, description=f"at most {MAX_ENTRIES}"),
        ],
        responses={200: LedgerEntriesSerializer},
    )
    def get(self, request):
        if is_agent(request.user) or not is_manager(request.user):
            raise PermissionDenied("The whole log is for managers (auditors).")
        params = request.query_params
        start = max(1, _int(params, "start") or 1)
        limit = min(MAX_ENTRIES, max(1, _int(params, "limit") or MAX_ENTRIES))
        with read_snapshot():  # the page and `last_seq` of the same moment
            rows = list(
                AuditEvent.objects.filter(seq__gte=start, seq__lt=start + limit).order_by("seq")
            )
            last = AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0
        return Response(
            {
                "entries": [
                    {
                        "seq": e.seq,
                        "event": e.pk,
                        "hash": e.hash,
                        "entry": e.ledger_entry().decode(),
                    }
                    for e in rows
                ],
                "last_seq": last,
                "next_start": start + limit if start + limit <= last else None,
            }
        )
