"""The tamper-evident audit trail: append (inside the caller's transaction) and verify.

Each event's hash is sha256 over a canonical JSON of its content including the previous
event's hash. Appends are serialized (a PostgreSQL advisory lock; SQLite's IMMEDIATE
transactions already serialize writers) and `seq` is unique, so the chain cannot fork.

Every writer opens its transaction with `audit.atomic()` (not `transaction.atomic()`): the
events recorded inside are appended together at the end of the outermost such block, so the
chain lock is held only from then until COMMIT, never for a whole transaction. Verbs are a
closed vocabulary (`AuditVerb`); an unknown verb is a bug and raises.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from approvals.models import AuditEvent, AuditVerb
from core.canonical import canonical_json, normalize

__all__ = [
    "Actor",
    "AuditVerb",
    "atomic",
    "changes",
    "deferred",
    "record",
    "record_many",
    "record_saved",
    "snapshot",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
_ADVISORY_LOCK_KEY = 0x4A171  # any constant shared by every process appending to the chain


@dataclass(frozen=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def for_user(cls, user) -> Actor:
        return cls(AuditEvent.ActorType.USER, str(user.pk), user.get_username())

    @classmethod
    def for_agent(cls, agent) -> Actor:
        return cls(AuditEvent.ActorType.AGENT, str(agent.pk), agent.slug)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(AuditEvent.ActorType.SYSTEM, "", label)


def _timestamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def compute_hash(
    *,
    seq: int,
    at: dt.datetime,
    actor_type: str,
    actor_id: str,
    actor_label: str,
    verb: str,
    target_type: str,
    target_id: str,
    data: dict[str, Any],
    prev_hash: str,
) -> str:
    payload = canonical_json(
        {
            "seq": seq,
            "at": _timestamp(at),
            "actor": [actor_type, actor_id, actor_label],
            "verb": verb,
            "target": [target_type, target_id],
            "data": data,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def event_hash(event: AuditEvent) -> str:
    return compute_hash(
        seq=event.seq,
        at=event.at,
        actor_type=event.actor_type,
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        verb=event.verb,
        target_type=event.target_type,
        target_id=event.target_id,
        data=event.data,
        prev_hash=event.prev_hash,
    )


# Events collected by `deferred()`: (the event's fields, its savepoint marker).
_deferred: ContextVar[list[tuple[dict[str, Any], Any]] | None] = ContextVar(
    "hitl_audit_deferred", default=None
)


@contextmanager
def deferred() -> Iterator[None]:
    """Inside a transaction: collect the events recorded in this block and append them all at
    its end, in one INSERT. The chain lock (held until COMMIT) is then taken only for that
    last statement, instead of from the first event on: concurrent writers (API requests)
    no longer queue behind each other's whole transaction. Events of a savepoint that rolled
    back are dropped with it. Use it right around the work, inside `transaction.atomic()`."""
    if _deferred.get() is not None:  # nested: the outermost block appends
        yield
        return
    pending: list[tuple[dict[str, Any], Any]] = []
    token = _deferred.set(pending)
    try:
        yield
    finally:
        _deferred.reset(token)
    _append([fields for fields, marker in pending if _still_pending(marker)])


@contextmanager
def atomic(**kwargs: Any) -> Iterator[None]:
    """`transaction.atomic(**kwargs)` whose audit events are appended at the end of the
    outermost such block: what every transition and service opens."""
    with transaction.atomic(**kwargs), deferred():
        yield


def _still_pending(marker: Any) -> bool:
    # Django drops on_commit callbacks registered in a savepoint that is rolled back; a no-op
    # callback per event tells which events belong to changes that still stand.
    return any(func is marker for _sids, func, _robust in connection.run_on_commit)


def _fields(actor: Actor, verb: str, target: Any, data: dict[str, Any] | None) -> dict[str, Any]:
    if verb not in _VERBS:
        raise ValueError(f"unknown audit verb {verb!r}: add it to AuditVerb")
    if hasattr(target, "_meta"):
        target_type, target_id = target._meta.label_lower, str(target.pk)
    else:
        target_type, target_id = str(target[0]), str(target[1])
    return {
        "actor_type": actor.type,
        "actor_id": actor.id,
        "actor_label": actor.label,
        "verb": verb,
        "target_type": target_type,
        "target_id": target_id,
        "data": normalize(data or {}),
    }


def _append(events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Chain and insert events: one lock, one read of the head, one bulk INSERT."""
    if not events:
        return []
    # No savepoint: a failed append must abort the caller's whole transaction anyway, and the
    # SAVEPOINT/RELEASE round trips would be spent while holding the chain lock.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])
        last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        rows = []
        for fields in events:
            fields = {**fields, "seq": seq, "at": timezone.now(), "prev_hash": prev_hash}
            row = AuditEvent(hash=compute_hash(**fields), **fields)
            rows.append(row)
            seq, prev_hash = seq + 1, row.hash
        AuditEvent.objects.bulk_create(rows, batch_size=500)
    return rows


_VERBS = frozenset(AuditVerb.values)


def _add(events: list[dict[str, Any]]) -> None:
    pending = _deferred.get()
    if pending is not None and connection.in_atomic_block:

        def marker() -> None:
            return None

        transaction.on_commit(marker)
        pending.extend((fields, marker) for fields in events)
        return  # appended (seq, hash) at the end of `deferred()`
    _append(events)


def record(actor: Actor, verb: str, target: Any, data: dict[str, Any] | None = None) -> None:
    """Append one event. Call inside the transaction of the change it describes."""
    _add([_fields(actor, verb, target, data)])


def record_many(entries: list[tuple[Actor, str, Any, dict[str, Any] | None]]) -> int:
    """Append several events in one go: what batch transitions use. Same chain, same hashes
    as `record` one by one."""
    _add([_fields(*entry) for entry in entries])
    return len(entries)


def snapshot(obj: Any, fields: list[str]) -> dict[str, Any]:
    """The audited state of `obj`: each field's value as JSON (a foreign key as its target's
    string form, e.g. a username; many-to-many as sorted names)."""
    out: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        if field.many_to_many:
            out[name] = sorted(str(o) for o in getattr(obj, name).all()) if obj.pk else []
        elif field.is_relation:
            related = getattr(obj, name)
            out[name] = str(related) if related is not None else None
        else:
            out[name] = getattr(obj, field.attname)
    return normalize(out)


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """{field: [old, new]} for the fields whose value changed."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def record_saved(
    actor: Actor, obj: Any, before: dict[str, Any] | None, fields: list[str], *, created: str,
    updated: str,
) -> None:  # fmt: skip
    """Audit an object just created (`before` None: its values) or changed (the fields that
    changed, old and new); nothing when nothing changed."""
    after = snapshot(obj, fields)
    if before is None:
        record(actor, created, obj, {"values": after})
    elif diff := changes(before, after):
        record(actor, updated, obj, {"changes": diff})


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    bad_seq: int | None = None
    problem: str = ""


def _events() -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("seq").iterator(chunk_size=2000)


def verify_chain() -> VerifyResult:
    """Walk the chain; report the first event that was changed, deleted or inserted."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for event in _events():
        if event.seq != expected_seq:
            return VerifyResult(
                False,
                checked,
                event.seq,
                f"sequence gap: expected #{expected_seq}, found #{event.seq} "
                f"(event #{expected_seq} was deleted or renumbered)",
            )
        if event.prev_hash != prev_hash:
            return VerifyResult(
                False, checked, event.seq, "prev_hash does not link to the previous event"
            )
        if event_hash(event) != event.hash:
            return VerifyResult(
                False, checked, event.seq, "content does not match its hash (changed)"
            )
        prev_hash = event.hash
        expected_seq += 1
        checked += 1
    return VerifyResult(True, checked)
