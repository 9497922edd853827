"""Evidence exports, streamed: audit events, decisions and checkpoints as CSV or JSON Lines;
the evidence pack (a zip) for a period; the feedback sink (every reviewer edit).

Streaming: rows come from the database in chunks (`.iterator()`: a server-side cursor on
PostgreSQL) and leave as they are formatted, a few hundred lines per chunk, so memory stays
flat at any size. Each export is itself an audit event (`export.created`: who, what, which
filters), written before the first byte is sent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.utils import timezone

from approvals import edits
from approvals.artifacts import artifact_text
from approvals.models import Artifact, Checkpoint, Decision
from approvals.representations import iso
from audit import events as audit
from audit.events import Actor, AuditVerb
from audit.models import AuditEvent
from core.canonical import action_sha256
from oversight import analytics as metrics

CHUNK = 500  # lines per chunk sent
FETCH = 2000  # rows per database round trip
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

AUDIT_COLUMNS = [
    "id", "seq", "at", "actor_type", "actor_id", "actor_label", "verb", "target_type",
    "target_id", "data", "hash",
]  # fmt: skip
CHECKPOINT_COLUMNS = [
    "id", "created_at", "agent", "run", "kind", "tool", "title", "risk", "status", "outcome",
    "policy", "role", "stage", "escalated", "deadline", "sla_seconds", "sla_due_at",
    "sla_breached", "sla_breached_at", "resolved_at", "resolved_by", "seconds_to_decision",
    "seconds_to_resume", "seconds_to_resolution", "resolution_reason", "action_sha256",
    "final_action_sha256", "drill",
]  # fmt: skip
DECISION_COLUMNS = [
    "id", "at", "checkpoint", "agent", "tool", "kind", "risk", "reviewer", "reviewer_email",
    "role", "stage", "outcome", "comment", "answer", "edited_action", "action_sha256",
    "channel", "first_viewed_at", "review_seconds", "policy", "drill",
]  # fmt: skip


def record_export(user, what: str, fmt: str, filters: dict[str, Any]) -> None:
    with audit.atomic():
        audit.record(
            Actor.for_user(user),
            AuditVerb.EXPORT_CREATED,
            user,
            {"what": what, "format": fmt, "filters": {k: str(v) for k, v in filters.items()}},
        )


# --- formats ----------------------------------------------------------------------------------


_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


def _cell(value: Any) -> Any:
    # Spreadsheet formula injection: text from agents must not start a formula. Numbers and
    # booleans go as they are (the csv module writes them).
    kind = type(value)
    if kind is str:
        return "'" + value if value.startswith(_FORMULA) else value
    if value is None:
        return ""
    if kind is dict or kind is list:
        return _JSON(value)  # starts with { or [: never a formula
    return value


def csv_lines(columns: list[str], rows: Iterable[dict]) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    batch: list[list] = []
    for row in rows:
        batch.append([_cell(row.get(c)) for c in columns])
        if len(batch) == CHUNK:
            writer.writerows(batch)
            batch = []
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    writer.writerows(batch)
    yield buf.getvalue().encode()


def jsonl_lines(rows: Iterable[dict]) -> Iterator[bytes]:
    out: list[str] = []
    dumps = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode
    for row in rows:
        out.append(dumps(row))
        if len(out) >= CHUNK:
            yield ("\n".join(out) + "\n").encode()
            out = []
    if out:
        yield ("\n".join(out) + "\n").encode()


def streamed(
    request: HttpRequest, what: str, fmt: str, columns: list[str], rows: Iterable[dict],
    filters: dict[str, Any],
) -> StreamingHttpResponse:  # fmt: skip
    if fmt not in FORMATS:
        raise Http404("Exports are .csv or .jsonl")
    record_export(request.user, what, fmt, filters)
    body = csv_lines(columns, rows) if fmt == "csv" else jsonl_lines(rows)
    response = StreamingHttpResponse(body, content_type=FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{what}-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


# --- rows -------------------------------------------------------------------------------------


def audit_rows(qs: QuerySet[AuditEvent]) -> Iterator[dict]:
    """Oldest first, in insert order (`id`; `seq` and the leaf `hash` are null for an event
    the ledger's sequencer has not logged yet)."""
    for values in qs.order_by("id").values_list(*AUDIT_COLUMNS).iterator(chunk_size=FETCH):
        row = dict(zip(AUDIT_COLUMNS, values, strict=True))
        row["at"] = iso(row["at"])
        yield row


def _checkpoints(qs: QuerySet[Checkpoint], *, routing: bool = False) -> QuerySet[Checkpoint]:
    qs = metrics.with_times(qs).select_related("agent", "policy", "resolved_by")
    deferred = ["context", "options", "final_action", "summary"] + ([] if routing else ["stages"])
    qs = qs.defer(*deferred).order_by("created_at", "id")
    if routing:
        qs = qs.prefetch_related(
            Prefetch(
                "artifacts",
                queryset=Artifact.objects.only(
                    "id", "checkpoint_id", "name", "kind", "sha256", "size", "edited_from_id"
                ),
            )
        )
    return qs


def checkpoint_row(cp: Checkpoint) -> dict:
    return {
        "id": str(cp.pk),
        "created_at": iso(cp.created_at),
        "agent": cp.agent.slug,
        "run": str(cp.run_id),
        "kind": cp.kind,
        "tool": cp.tool,
        "title": cp.title,
        "risk": cp.risk,
        "status": cp.status,
        "outcome": cp.outcome,
        "policy": cp.policy.name if cp.policy else None,
        "role": cp.current_role,
        "stage": cp.stage,
        "escalated": cp.escalated,
        "deadline": iso(cp.deadline),
        "sla_seconds": cp.sla_seconds,
        "sla_due_at": iso(cp.sla_due_at),
        "sla_breached": cp.sla_breached,
        "sla_breached_at": iso(cp.sla_breached_at),
        "resolved_at": iso(cp.resolved_at),
        "resolved_by": cp.resolved_by.get_username() if cp.resolved_by else None,
        "seconds_to_decision": metrics.seconds(cp.time_to_decision),
        "seconds_to_resume": metrics.seconds(cp.time_to_resume),
        "seconds_to_resolution": metrics.seconds(cp.time_to_resolution),
        "resolution_reason": cp.resolution_reason,
        "action_sha256": action_sha256(cp.action),
        "final_action_sha256": cp.final_action_sha256,
        "drill": bool(cp.drill_id),
    }


def checkpoint_rows(qs: QuerySet[Checkpoint]) -> Iterator[dict]:
    for cp in _checkpoints(qs).iterator(chunk_size=FETCH):
        yield checkpoint_row(cp)


def _decisions(qs: QuerySet[Decision]) -> QuerySet[Decision]:
    return (
        metrics.with_first_view(qs)
        .select_related("reviewer", "checkpoint__agent", "checkpoint__policy")
        .defer("checkpoint__context", "checkpoint__options", "checkpoint__final_action")
        .order_by("created_at", "id")
    )


def decision_row(d: Decision) -> dict:
    cp = d.checkpoint
    return {
        "id": d.pk,
        "at": iso(d.created_at),
        "checkpoint": str(cp.pk),
        "agent": cp.agent.slug,
        "tool": cp.tool,
        "kind": cp.kind,
        "risk": cp.risk,
        "reviewer": d.reviewer.get_username(),
        "reviewer_email": d.reviewer.email,
        "role": d.role,
        "stage": d.stage,
        "outcome": d.outcome,
        "comment": d.comment,
        "answer": d.answer,
        "edited_action": d.edited_action,
        "action_sha256": d.action_sha256,
        "channel": d.channel,
        "first_viewed_at": iso(d.viewed_at),
        "review_seconds": (
            round((d.created_at - d.viewed_at).total_seconds(), 3) if d.viewed_at else None
        ),
        "policy": cp.policy.name if cp.policy else None,
        "drill": bool(cp.drill_id),
    }


def decision_rows(qs: QuerySet[Decision]) -> Iterator[dict]:
    for d in _decisions(qs).iterator(chunk_size=FETCH):
        yield decision_row(d)


def edit_rows(qs: QuerySet[Decision]) -> Iterator[dict]:
    """The feedback sink: every reviewer edit, with the version before it, the edited one,
    the diff and the reviewer's comment; edited drafts (artifacts) with both texts."""
    previous: dict[Any, dict] = {}
    edited = qs.filter(outcome=Decision.Outcome.MODIFY).select_related(
        "reviewer", "checkpoint__agent"
    )
    for d in edited.order_by("checkpoint_id", "created_at", "id").iterator(chunk_size=500):
        cp = d.checkpoint
        before = previous.get(cp.pk) or cp.action or {}
        after = {k: v for k, v in (d.edited_action or {}).items() if k != "edited_artifacts"}
        previous[cp.pk] = after
        drafts = []
        for item in (d.edited_action or {}).get("edited_artifacts") or []:
            original = _artifact(item.get("original"))
            new = _artifact(item.get("ref"))
            if original is None or new is None:
                continue
            old_text, new_text = artifact_text(original), artifact_text(new)
            drafts.append(
                {
                    "name": original.name,
                    "original": old_text,
                    "edited": new_text,
                    "diff": edits.unified(
                        old_text, new_text, f"a/{original.name}", f"b/{new.name}"
                    ),
                }
            )
        context = cp.context or {}
        yield {
            "checkpoint": str(cp.pk),
            "at": iso(d.created_at),
            "agent": cp.agent.slug,
            "tool": cp.tool,
            "kind": cp.kind,
            "title": cp.title,
            "request": context.get("request") or "",
            "reasoning": context.get("reasoning") or [],
            "original_action": {k: v for k, v in before.items() if k != "edited_artifacts"},
            "edited_action": after,
            "diff": edits.action_diff(
                {k: v for k, v in before.items() if k != "edited_artifacts"}, after
            )
            if after
            else "",
            "artifacts": drafts,
            "comment": d.comment,
            "reviewer": d.reviewer.get_username(),
            "role": d.role,
            "final_status": cp.status,
        }


def _artifact(ref: str | None) -> Artifact | None:
    if not ref or not str(ref).startswith("artifact://"):
        return None
    return Artifact.objects.filter(pk=str(ref).removeprefix("artifact://")).first()


# --- the evidence pack ---------------------------------------------------------------------------


class _Sink:
    """A write-only file for `zipfile` that hands over what was written (a zip written to a
    stream that cannot seek uses data descriptors: standard, readable by any unzip)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


README = """Evidence pack of the HITL Portal
================================

checkpoints.jsonl    every request of the period: what the agent asked, the policy that
                     routed it, who resolved it and when, time to decision and to resume,
                     the SLA result, the digests of the action and of every artifact
decisions.jsonl      every reviewer's vote on those requests: who (username, name, email,
                     roles), in which role and stage, the outcome, comment, edits, channel,
                     when they first opened the request and when they decided
audit_events.jsonl   every audit event of the period, with its ledger sequence number and
                     RFC 6962 leaf hash: sha256(0x00 || the event's canonical entry)
verification.json    the result of verifying the whole audit ledger when the pack was made,
                     and its latest signed tree head
manifest.json        who made the pack, when, for which period and filters, and the sha256
                     and row count of each file above

Retention: keep this pack and the portal's database for at least six months (EU AI Act,
record-keeping and human oversight). `python manage.py verify_audit` re-checks the ledger;
its "head", saved as a file, is a trusted head for `hitl verify --trusted-head`: the
ledger must still extend it.
"""


def _reviewer_identity(users: dict, user) -> dict:
    if user.pk not in users:
        users[user.pk] = {
            "id": user.pk,
            "username": user.get_username(),
            "name": user.get_full_name(),
            "email": user.email,
            "roles": sorted(user.groups.values_list("name", flat=True)),
        }
    return users[user.pk]


def pack_stream(user, filters: metrics.Filters) -> Iterator[bytes]:
    sink = _Sink()
    files: dict[str, dict[str, Any]] = {}
    checkpoints = filters.checkpoints().order_by()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as pack:

        def member(name: str, lines: Iterable[bytes]) -> Iterator[bytes]:
            digest, rows = hashlib.sha256(), 0
            with pack.open(name, "w", force_zip64=True) as fh:
                for chunk in lines:
                    digest.update(chunk)
                    rows += chunk.count(b"\n")
                    fh.write(chunk)
                    yield sink.take()
            files[name] = {"sha256": digest.hexdigest(), "rows": rows}
            yield sink.take()

        pack.writestr("README.txt", README)
        yield sink.take()
        yield from member("checkpoints.jsonl", jsonl_lines(_pack_checkpoint_rows(checkpoints)))
        decisions = Decision.objects.filter(checkpoint__in=checkpoints)
        yield from member("decisions.jsonl", jsonl_lines(_pack_decision_rows(decisions)))
        events = AuditEvent.objects.filter(at__gte=filters.start_at, at__lt=filters.end_at)
        yield from member("audit_events.jsonl", jsonl_lines(audit_rows(events)))
        result = audit.verify_ledger()
        verification = {
            "verified_at": iso(timezone.now()),
            "ok": result.ok,
            "checked": result.checked,
            "bad_seq": result.bad_seq,
            "problem": result.problem,
            "pending": result.pending,
            # The latest signed tree head, read with the events verified: `hitl verify
            # --trusted-head` and any witness check later that the ledger still extends it.
            "head": result.head,
        }
        yield from member("verification.json", [json.dumps(verification, indent=2).encode()])
        manifest = {
            "generated_at": iso(timezone.now()),
            "generated_by": {"id": user.pk, "username": user.get_username(), "email": user.email},
            "period": {"start": str(filters.start), "end": str(filters.end)},
            "filters": {
                k: v
                for k, v in vars(filters).items()
                if k not in ("start", "end") and v not in (None, "")
            },
            "files": files,
        }
        pack.writestr("manifest.json", json.dumps(manifest, indent=2, default=str))
    yield sink.take()


def _pack_checkpoint_rows(qs: QuerySet[Checkpoint]) -> Iterator[dict]:
    """Checkpoint rows plus the stages they were routed to and their artifacts' digests."""
    for cp in _checkpoints(qs, routing=True).iterator(chunk_size=1000):
        row = checkpoint_row(cp)
        row["stages"] = cp.stages
        row["artifacts"] = [
            {
                "id": str(a.pk),
                "name": a.name,
                "kind": a.kind,
                "sha256": a.sha256,
                "size": a.size,
                "edited_from": str(a.edited_from_id) if a.edited_from_id else None,
            }
            for a in cp.artifacts.all()
        ]
        yield row


def _pack_decision_rows(qs: QuerySet[Decision]) -> Iterator[dict]:
    users: dict = {}
    for d in _decisions(qs).iterator(chunk_size=FETCH):
        yield {**decision_row(d), "reviewer": _reviewer_identity(users, d.reviewer)}
