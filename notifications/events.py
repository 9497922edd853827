"""Announcing an event: record it once (a Notice), and owe each recipient and channel one
Delivery (or a digest entry), inside the transaction of the change. A constant number of
queries for any number of checkpoints, so the batched expiry sweep can announce hundreds.
Events about no checkpoint (an agent halted or resumed) are emailed to named people
(`tell`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import prefetch_related_objects
from django.utils import timezone

from approvals.models import Checkpoint
from approvals.representations import iso
from approvals.rules import four_eyes_excluded_ids
from notifications import recipients
from notifications.models import (
    ChannelKind,
    Delivery,
    DigestEntry,
    Notice,
    Preference,
)
from notifications.outbox import OUTBOX, new_delivery


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
    """Record each event once and owe its deliveries; returns the notices created (events
    already announced are skipped: a repeated signal tells nobody twice)."""
    # Nobody to tell (e.g. an expired request that no person asked for): nothing to record.
    specs = list({s.key: s for s in specs if s.role or s.people}.values())
    if not specs:
        return []
    existing = set(
        Notice.objects.filter(
            checkpoint_id__in={s.checkpoint.pk for s in specs},
            event__in={s.event for s in specs},
        ).values_list("checkpoint_id", "event", "occurrence")
    )
    specs = [s for s in specs if s.key not in existing]
    if not specs:
        return []
    notices = Notice.objects.bulk_create(
        [
            Notice(
                checkpoint=s.checkpoint,
                event=s.event,
                occurrence=s.occurrence,
                role=s.role,
                data=s.data,
            )
            for s in specs
        ]
    )
    _owe(list(zip(specs, notices, strict=True)))
    return notices


def _owe(pairs: list[tuple[Spec, Notice]]) -> None:
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
    OUTBOX.owe_many(deliveries, reason=pairs[0][0].event)
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
