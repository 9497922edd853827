"""The audit trail: record events inside the caller's transaction; verify the log.

Events are inserted *unsequenced* (no lock, no hash) in the same transaction as the change
they describe, so they commit or roll back with it and concurrent writers never wait for each
other. The ledger's sequencer (`core.ledger`) then gives each committed event its `seq` and
RFC 6962 leaf hash over `entry_v1`, appends it to the Merkle tree and signs a tree head:
`verify_ledger` (the `verify_audit` command) and `hitl verify` check that log.

Every writer opens its transaction with `audit.atomic()` (not `transaction.atomic()`): the
events recorded inside are inserted together at the end of the outermost such block, in one
INSERT. Verbs are a closed vocabulary (`AuditVerb`); an unknown verb is a bug and raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit import payloads
from audit.entry import entry_v1
from audit.models import AuditEvent, AuditVerb
from core.canonical import normalize
from core.ledger import sequencer
from core.ledger.verify import VerifyResult, verify_log

__all__ = [
    "Actor",
    "AuditVerb",
    "VerifyResult",
    "atomic",
    "changes",
    "deferred",
    "entry_v1",
    "record",
    "record_many",
    "record_saved",
    "snapshot",
    "verify_ledger",
]


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
    def for_policy(cls, version) -> Actor:
        """A decision made by a published policy version, not by a person."""
        return cls(AuditEvent.ActorType.POLICY, str(version.pk), f"policy {version.label}")

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(AuditEvent.ActorType.SYSTEM, "", label)


# Events collected by `deferred()`: (the event's fields, its savepoint marker).
_deferred: ContextVar[list[tuple[dict[str, Any], Any]] | None] = ContextVar(
    "hitl_audit_deferred", default=None
)


@contextmanager
def deferred() -> Iterator[None]:
    """Inside a transaction: collect the events recorded in this block and insert them all at
    its end, in one INSERT (one round trip however many events a transaction records).
    Events of a savepoint that rolled back are dropped with it. Use it right around the work,
    inside `transaction.atomic()`."""
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


def flush() -> list[AuditEvent]:
    """Insert the events deferred so far now (still inside the transaction), e.g. so that a
    response built before the block ends can name them. Returns the rows inserted (with their
    ids where the database returns them)."""
    pending = _deferred.get()
    if not pending:
        return []
    rows = _append([fields for fields, marker in pending if _still_pending(marker)])
    pending.clear()
    return rows


# Inside a block opened with `atomic(all_or_nothing=True)`: nested blocks take no savepoint.
_all_or_nothing: ContextVar[bool] = ContextVar("hitl_audit_all_or_nothing", default=False)


@contextmanager
def atomic(*, all_or_nothing: bool = False, **kwargs: Any) -> Iterator[None]:
    """`transaction.atomic(**kwargs)` whose audit events are inserted at the end of the
    outermost such block: what every transition and service opens.

    `all_or_nothing`: whoever opens this block rolls all of it back on any exception (an API
    request's transaction: `api.idempotency`), so the blocks nested inside it need no
    savepoint of their own (a round trip each on PostgreSQL). A nested block that fails marks
    the whole block for rollback: code that caught the error and went on querying would get
    Django's TransactionManagementError, never a half-done change."""
    if _all_or_nothing.get() and connection.in_atomic_block:
        kwargs.setdefault("savepoint", False)
    token = _all_or_nothing.set(True) if all_or_nothing else None
    try:
        with transaction.atomic(**kwargs), deferred():
            yield
    finally:
        if token is not None:
            _all_or_nothing.reset(token)


def _still_pending(marker: Any) -> bool:
    # Django drops on_commit callbacks registered in a savepoint that is rolled back; a no-op
    # callback per event tells which events belong to changes that still stand.
    return any(func is marker for _sids, func, _robust in connection.run_on_commit)


def _fields(actor: Actor, verb: str, target: Any, data: dict[str, Any] | None) -> dict[str, Any]:
    if verb not in _VERBS:
        raise ValueError(f"unknown audit verb {verb!r}: add it to AuditVerb")
    if payloads.STRICT and (extra := payloads.undeclared(verb, data)):
        raise ValueError(f"{verb} declares no key {extra}: add it to audit/payloads.py")
    if hasattr(target, "_meta"):
        # A model that moved app keeps the name its trail was written under (`AUDIT_TARGET`):
        # readers find its whole history by one (type, id).
        target_type = getattr(target, "AUDIT_TARGET", None) or target._meta.label_lower
        target_id = str(target.pk)
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
        "at": timezone.now(),
    }


def _append(events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Insert events unsequenced, in one INSERT. No lock: the sequencer orders them later."""
    if not events:
        return []
    rows = AuditEvent.objects.bulk_create([AuditEvent(**fields) for fields in events], 500)
    sequencer.after_commit()
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
    """Record one event. Call inside the transaction of the change it describes."""
    _add([_fields(actor, verb, target, data)])


def record_many(entries: list[tuple[Actor, str, Any, dict[str, Any] | None]]) -> int:
    """Record several events in one go: what batch transitions use (the same events as
    `record` one by one)."""
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


def verify_ledger(trusted_head: dict | None = None) -> VerifyResult:
    """Verify the whole log from the rows: every event's leaf hash from its content, no gap,
    every signed head's root and signature, nothing beyond the latest head; with
    `trusted_head` (a head published before, e.g. by a witness) also that the log still
    extends it. Unsequenced events are counted, not judged (they are not in the log yet)."""
    return verify_log(trusted_head=trusted_head)
