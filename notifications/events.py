"""Announcing an event, in two steps:

1. `announce_many`, inside the transaction of the change: record each event once (a Notice,
   carrying who is to be told and the facts), one INSERT for a batch, and enqueue at commit one
   `notifications.tasks.fan_out` task with the transaction's new notices.
2. `fan_out`, the task (and the sweep, for notices whose task was lost): claim the notices
   not yet fanned out, and owe each recipient and channel one Delivery (or a digest entry,
   or, over a mailbox's limit, a place in a summary: `notifications.coalesce`). When that
   commits, the task sends them itself, in batches over one SMTP connection (the first
   batch; the rest in `deliver_many` tasks): a create costs one task, not one per recipient.
Both take a constant number of queries for any number of checkpoints, so the batched expiry
sweep can announce hundreds. Events about no checkpoint (an agent halted or resumed) are
emailed to named people in the transaction (`tell`): rare, and there is no notice to carry
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.db.models import Exists, OuterRef, prefetch_related_objects
from django.utils import timezone

from approvals.models import Checkpoint
from approvals.representations import iso
from approvals.rules import four_eyes_excluded_ids
from core.queue import enqueue_on_commit
from notifications import recipients
from notifications.coalesce import coalesce
from notifications.models import (
    ChannelKind,
    Delivery,
    DigestEntry,
    Notice,
    Preference,
)
from notifications.outbox import OUTBOX, new_delivery

FAN_OUT_TASK = "notifications.tasks.fan_out"


@dataclass
class Spec:
    """One event to announce: to the people of `role` (through the role's channels) and/or
    to `people` (user ids, by email)."""

    checkpoint: Checkpoint
    event: str
    occurrence: str = ""
    role: str = ""
    people: list[int] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.checkpoint.pk, self.event, self.occurrence)


def facts(cp: Checkpoint, **extra) -> dict[str, Any]:
    """What a notification needs to say even if the checkpoint moves on before it is sent."""
    return {
        "status": cp.status,
        "role": cp.current_role,
        "stage": cp.stage,
        "deadline": iso(cp.deadline),
        "escalation_step": cp.escalation_step,
        **extra,
    }


def announce(spec: Spec) -> Notice | None:
    notices = announce_many([spec])
    return notices[0] if notices else None


def announce_many(specs: list[Spec]) -> list[Notice]:
    """Inside the transaction of the change: record each event once, and fan the new ones out
    after commit; returns the notices created (events already announced are skipped: a
    repeated signal tells nobody twice)."""
    # Nobody to tell (e.g. an expired request that no person asked for): nothing to record.
    specs = list({s.key: s for s in specs if s.role or s.people}.values())
    if not specs:
        return []
    notices = _record(specs)
    if notices:
        enqueue_on_commit(FAN_OUT_TASK, [n.pk for n in notices], reason=notices[0].event)
    return notices


def _record(specs: list[Spec]) -> list[Notice]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: the notices in one statement, which skips
    the events already recorded (the unique (checkpoint, event, occurrence), also against a
    concurrent transaction: PostgreSQL waits for it) and says which rows are new, on SQLite
    (3.35+) and PostgreSQL alike. `bulk_create(ignore_conflicts=True)` cannot say which rows
    were inserted; a SELECT before the INSERT would cost a statement and still race."""
    now = timezone.now()
    rows = {
        s.key: Notice(
            checkpoint=s.checkpoint,
            event=s.event,
            occurrence=s.occurrence,
            role=s.role,
            people=s.people,
            data=s.data,
            created_at=now,
        )
        for s in specs
    }
    connection = connections[Notice.objects.db]
    fields = [f for f in Notice._meta.concrete_fields if not f.primary_key]
    qn = connection.ops.quote_name
    checkpoint_id = Notice._meta.get_field("checkpoint").target_field
    pending = list(rows.values())
    batch = connection.ops.bulk_batch_size(fields, pending)
    created = []
    with connection.cursor() as cursor:
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            placeholders = ", ".join("(" + ", ".join(["%s"] * len(fields)) + ")" for _ in chunk)
            cursor.execute(
                f"INSERT INTO {qn(Notice._meta.db_table)} "
                f"({', '.join(qn(f.column) for f in fields)}) VALUES {placeholders} "
                "ON CONFLICT (checkpoint_id, event, occurrence) DO NOTHING "
                "RETURNING id, checkpoint_id, event, occurrence",
                [
                    f.get_db_prep_save(getattr(row, f.attname), connection)
                    for row in chunk
                    for f in fields
                ],
            )
            for pk, cp, event, occurrence in cursor.fetchall():
                row = rows[(checkpoint_id.to_python(cp), event, occurrence)]
                row.pk = pk
                row._state.adding = False
                created.append(row)
    return created


def fan_out(notice_ids: list, *, send_now: bool = False) -> int:
    """The fan-out of notices (the task, and the sweep's recovery): in one transaction, claim
    those not fanned out yet and owe their deliveries (`send_now`, the task: and send them
    after the commit, here). The claim is a compare-and-set on
    `fanned_out_at`, taken under the rows' lock (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
    transactions hold the write lock from BEGIN), so two workers, a redelivered task or the
    sweep fan a notice out once: the second finds it claimed. Returns how many were claimed."""
    with transaction.atomic():
        notices = list(
            Notice.objects.select_for_update(of=("self",))
            .filter(pk__in=notice_ids, fanned_out_at__isnull=True)
            .annotate(
                owed=Exists(Delivery.objects.filter(notice=OuterRef("pk")))
                | Exists(DigestEntry.objects.filter(notice=OuterRef("pk")))
            )
            .select_related("checkpoint")
            .order_by("pk")
        )
        if not notices:
            return 0
        claimed = Notice.objects.filter(
            pk__in=[n.pk for n in notices], fanned_out_at__isnull=True
        ).update(fanned_out_at=timezone.now())
        if claimed != len(notices):  # cannot happen under the lock; never fan out twice
            raise RuntimeError(f"claimed {claimed} of {len(notices)} locked notices")
        # A process still on the code before the fan-out (a rolling upgrade) wrote its
        # notices' deliveries with them: those are claimed, not owed again.
        pairs = [(_spec(n), n) for n in notices if not n.owed]
        if pairs:
            _owe(pairs, send_now=send_now)
    return len(notices)


def _spec(notice: Notice) -> Spec:
    return Spec(
        notice.checkpoint,
        notice.event,
        notice.occurrence,
        notice.role,
        people=list(notice.people),
        data=notice.data,
    )


def _owe(pairs: list[tuple[Spec, Notice]], *, send_now: bool = False) -> None:
    now = timezone.now()
    prefetch_related_objects([s.checkpoint for s, _n in pairs], "agent")
    roles = {s.role for s, _n in pairs if s.role}
    channels = recipients.channels_for(roles) if roles else {}
    # Who reads a role's email: its deciders (four-eyes applied per checkpoint below).
    members: dict[str, list] = {}
    for role, chans in channels.items():
        if any(c.kind == ChannelKind.EMAIL and not c.config.get("to") for c in chans):
            members[role] = list(
                recipients.role_people(role, now=now).only("id", "email", "username")
            )
    people_ids = {pk for s, _n in pairs for pk in s.people}
    named = {
        u.pk: u
        for u in recipients.present(
            get_user_model().objects.filter(pk__in=people_ids, is_active=True), now
        ).only("id", "email", "username")
    }
    everyone = {u.pk for us in members.values() for u in us} | set(named)
    prefs = recipients.preferences(everyone)
    deliveries, entries = [], []
    for spec, notice in pairs:
        emailed: dict[int, Any] = {}
        for channel in channels.get(spec.role, []):
            if not channel.wants(spec.event):
                continue
            if channel.kind != ChannelKind.EMAIL:
                deliveries.append(
                    new_delivery(notice, channel.kind, f"route:{channel.pk}", route=channel)
                )
            elif channel.config.get("to"):
                for address in channel.config["to"]:
                    deliveries.append(
                        new_delivery(
                            notice, ChannelKind.EMAIL, f"to:{address}", route=channel,
                            address=address,
                        )
                    )  # fmt: skip
            else:
                excluded = set(four_eyes_excluded_ids(spec.checkpoint))
                for user in members.get(spec.role, []):
                    if user.pk not in excluded:
                        emailed[user.pk] = user
        for pk in spec.people:
            if pk in named:
                emailed[pk] = named[pk]
        for user in emailed.values():
            pref = prefs.get(user.pk)
            if not user.email or (pref is not None and not pref.email):
                continue
            if pref is not None and pref.email_mode == Preference.EmailMode.DIGEST:
                entries.append(DigestEntry(notice=notice, recipient_id=user.pk))
            else:
                deliveries.append(
                    new_delivery(
                        notice, ChannelKind.EMAIL, f"user:{user.pk}", recipient_id=user.pk,
                        address=user.email,
                    )
                )  # fmt: skip
    coalesce(deliveries, now)
    OUTBOX.owe_many(deliveries, reason=pairs[0][0].event, send_now=send_now)
    DigestEntry.objects.bulk_create(entries)


def tell(event: str, key: str, people: list[int], data: dict[str, Any]) -> list[Delivery]:
    """An event about no checkpoint (an agent halted or resumed): one email delivery per
    person, carrying the facts (`data`) it is written from. `key` names the occurrence, so
    the same occurrence tells nobody twice. People away or with email off are left out, as
    for every event; a digest does not hold it (digests bundle requests), it is sent now."""
    now = timezone.now()
    users = recipients.present(
        get_user_model().objects.filter(pk__in=[pk for pk in people if pk], is_active=True), now
    ).only("id", "email", "username")
    prefs = recipients.preferences([u.pk for u in users])
    targets = {
        f"{key}:user:{u.pk}": u
        for u in users
        if u.email and (u.pk not in prefs or prefs[u.pk].email)
    }
    if not targets:
        return []
    done = set(
        Delivery.objects.filter(
            notice__isnull=True, channel=ChannelKind.EMAIL, target__in=list(targets)
        ).values_list("target", flat=True)
    )
    rows = [
        new_delivery(
            None, ChannelKind.EMAIL, target, event=event, recipient_id=user.pk,
            address=user.email, data=data,
        )
        for target, user in targets.items()
        if target not in done
    ]  # fmt: skip
    return OUTBOX.owe_many(rows, reason=event)
