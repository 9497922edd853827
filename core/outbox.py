"""The generic outbox: rows that say "this must be sent", written inside the transaction of the
change they announce, sent by a django-q2 task after commit, retried with backoff, and
re-enqueued by the reconcile sweep when a task was lost. One implementation for every kind of
delivery (webhooks to agents, notifications to people, signed heads to the ledger's
witnesses).

A kind of delivery is a subclass of `Outbox` (see `agents.webhooks`): it names its row model
(a subclass of `OutboxItem`) and its send task, and implements `send(row)`.

    owe(...)          inside the announcing transaction: the row, and an enqueue on commit
    owe_many(rows)    the same for many new rows at once (one INSERT, one batch of enqueues);
                      `send_now=True` (a task that owes them): sent by this process at commit
    deliver(pk)       the task: claim → send → record_attempt
    claim(pk)         compare-and-set: one attempt at a time, even with duplicate tasks
    deliver_many(pks) the batch task: claim_many → send each within one `session()` (e.g. one
                      SMTP connection) → record_attempt each, as `deliver` does
    claim_many(pks)   the compare-and-set of a batch, under the rows' lock: of two workers
                      claiming the same rows, each row goes to one
    record_attempt    the outcome, only while this attempt still holds the row (an attempt
                      that outlived its lease never overwrites a newer one)
    resend(row)       send again now (delivered or failed ones too), same row
    enqueue_due()     the sweep's part: retries that came due, and sends whose task was lost

A kind that names a `batch_task` (which calls `deliver_many(pks)`) is sent in batches:
`owe_many` and the sweep enqueue one task per `batch_size` rows instead of one per row.

Outcomes: "delivered", "retry" (next attempt after `backoff_seconds`, with jitter), "failed"
(gave up after the row's `give_up_at`). Inside the recording transaction, `attempted(row,
outcome, error)` is called for every recorded attempt (e.g. to keep a status row current) and
`finished(row, outcome, error)` for delivered and failed rows (e.g. to audit them).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.metrics import DELIVERY_ATTEMPTS
from core.queue import batched, enqueue

log = logging.getLogger(__name__)


class OutboxItem(models.Model):
    """The delivery bookkeeping every outbox row carries."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Set when a send task is enqueued or starts; the sweep tells lost tasks by it.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField(
        help_text="Failed attempts are retried with backoff until then (re-send resets it)."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


def backoff_seconds(attempts: int) -> float:
    """Delay after the n-th failed attempt: 30 s, 1, 2, 4, 8 ... min, capped at 4 h, ±20 %."""
    base = min(30 * 2 ** max(attempts - 1, 0), 4 * 3600)
    return base * random.uniform(0.8, 1.2)


class Outbox:
    model: ClassVar[type[OutboxItem]]
    task: ClassVar[str]  # dotted path of the task that calls `deliver(pk)`
    name: ClassVar[str] = "outbox"  # for logs
    # Dotted path of the task that calls `deliver_many(pks)`; empty: one task per row.
    batch_task: ClassVar[str] = ""
    batch_size: ClassVar[int] = 50

    # --- what a kind of delivery provides ------------------------------------------------------

    def send(self, row: Any) -> tuple[int | None, str]:
        """One attempt: (status code or None, error text; "" means delivered). May raise:
        any exception counts as a failed attempt."""
        raise NotImplementedError

    def attempted(self, row: Any, outcome: str, error: str) -> None:
        """Inside the recording transaction, for every outcome ("retry" too)."""

    def finished(self, row: Any, outcome: str, error: str) -> None:
        """Inside the recording transaction, for "delivered" and "failed"."""

    def lease_seconds(self) -> int:
        """How long one attempt holds the row (longer than `send` can take)."""
        return 60

    def retry_hours(self) -> int:
        """Failed attempts are retried this long before the row is given up."""
        return 24

    def load(self, pk) -> Any:
        return self.model.objects.get(pk=pk)

    def rows(self) -> models.QuerySet:
        """The rows as a batch loads them (e.g. with what `send` reads of related rows)."""
        return self.model.objects.all()

    @contextmanager
    def session(self) -> Iterator[Any]:
        """What the sends of one batch share (e.g. one SMTP connection), given to `send_in`."""
        yield None

    def send_in(self, session: Any, row: Any) -> tuple[int | None, str]:
        """One attempt within a batch's `session` (None outside a batch)."""
        return self.send(row)

    # --- the mechanics --------------------------------------------------------------------------

    def owe(self, *, defaults: dict[str, Any], reason: str, **lookup: Any) -> tuple[Any, bool]:
        """Inside the announcing transaction: the row for `lookup` (created once: a re-sent
        signal does not double it), and its first attempt enqueued on commit."""
        now = timezone.now()
        row, created = self.model.objects.get_or_create(
            **lookup,
            defaults={
                "next_attempt_at": now,
                "enqueued_at": now,
                "give_up_at": now + dt.timedelta(hours=self.retry_hours()),
                **defaults,
            },
        )
        if created:
            transaction.on_commit(lambda: enqueue(self.task, str(row.pk), reason=reason))
        return row, created

    def owe_many(self, rows: list[Any], *, reason: str, send_now: bool = False) -> list[Any]:
        """Inside the announcing transaction: insert rows the caller knows are new (e.g. the
        deliveries of an event it has just recorded once), and enqueue their first attempts
        together on commit (one broker write with the ORM broker), in batch tasks if the kind
        has one. `send_now`: the caller is a task, which sends them at commit itself."""
        if not rows:
            return []
        now = timezone.now()
        give_up = now + dt.timedelta(hours=self.retry_hours())
        for row in rows:
            row.next_attempt_at, row.enqueued_at, row.give_up_at = now, now, give_up
        created = self.model.objects.bulk_create(rows)
        # (a row written as something else than pending, e.g. coalesced, is not sent)
        pks = [str(row.pk) for row in created if row.status == OutboxItem.Status.PENDING]
        if send_now and self.batch_task:
            # The caller is a task: it sends them itself at commit (the first batch; the
            # rest in batch tasks) instead of a task more. Should it die first, they are
            # sends whose task was lost: the sweep enqueues them after the grace.
            transaction.on_commit(lambda: self.send_now(pks, reason=reason), robust=True)
        else:
            transaction.on_commit(lambda: self._enqueue(pks, reason=reason))
        return created

    def send_now(self, pks: list[str], *, reason: str) -> dict[str, int]:
        """After commit, in the calling task: the first batch sent here, the rest enqueued."""
        self._enqueue(pks[self.batch_size :], reason=reason)
        return self.deliver_many(pks[: self.batch_size])

    def _enqueue(self, pks: list[str], *, reason: str) -> None:
        if not pks:
            return
        with batched():
            if self.batch_task:
                for start in range(0, len(pks), self.batch_size):
                    enqueue(self.batch_task, pks[start : start + self.batch_size], reason=reason)
            else:
                for pk in pks:
                    enqueue(self.task, pk, reason=reason)

    def claim(self, pk) -> Any | None:
        """Take the row for one attempt (compare-and-set): duplicate tasks (ORM redelivery, the
        sweep) do not send twice at the same time."""
        now = timezone.now()
        lease = now + dt.timedelta(seconds=self.lease_seconds())
        claimed = (
            self.model.objects.filter(
                pk=pk, status=OutboxItem.Status.PENDING, next_attempt_at__lte=now
            )
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
            .update(locked_until=lease, attempts=F("attempts") + 1, last_attempt_at=now)
        )
        if not claimed:
            return None
        return self.load(pk)

    def claim_many(self, pks: list) -> list[Any]:
        """`claim` for a batch: the claimable rows of `pks`, locked (FOR UPDATE SKIP LOCKED on
        PostgreSQL: rows another worker is claiming are left to it; SQLite's IMMEDIATE
        transaction holds the write lock from BEGIN), then updated under that lock. A worker
        that reads the rows after the other's commit finds them leased: each row is claimed
        by one. The lease covers two attempts: `deliver_many` starts none with less than one
        attempt's lease left."""
        if not pks:
            return []
        now = timezone.now()
        lease = now + dt.timedelta(seconds=2 * self.lease_seconds())
        with transaction.atomic():
            free = Q(status=OutboxItem.Status.PENDING, next_attempt_at__lte=now) & (
                Q(locked_until__isnull=True) | Q(locked_until__lte=now)
            )
            rows = list(
                self.rows()
                .filter(free, pk__in=pks)
                .select_for_update(skip_locked=True, of=("self",))
            )
            if not rows:
                return []
            claimed = self.model.objects.filter(free, pk__in=[row.pk for row in rows]).update(
                locked_until=lease, attempts=F("attempts") + 1, last_attempt_at=now
            )
            if claimed != len(rows):  # cannot happen under the lock; never send twice
                raise RuntimeError(f"claimed {claimed} of {len(rows)} locked rows")
        for row in rows:  # what the UPDATE stored (under the lock: nobody changed them)
            row.locked_until, row.attempts, row.last_attempt_at = lease, row.attempts + 1, now
        order = {pk: i for i, pk in enumerate(pks)}
        return sorted(rows, key=lambda row: order.get(str(row.pk), order.get(row.pk, 0)))

    def release(self, rows: list[Any]) -> int:
        """Hand back claimed rows not attempted (their claim's attempt is not counted)."""
        released = 0
        for row in rows:
            released += self.model.objects.filter(
                pk=row.pk,
                status=OutboxItem.Status.PENDING,
                locked_until=row.locked_until,
                attempts=row.attempts,
            ).update(locked_until=None, attempts=F("attempts") - 1)
        return released

    def deliver(self, pk) -> str:
        row = self.claim(pk)
        if row is None:
            return "skipped: delivered, failed, not due, or being sent"
        return self._attempt(None, row)

    def deliver_many(self, pks: list) -> dict[str, int]:
        """The batch task: claim the rows of `pks` that are due and free (`batch_size` at a
        time), send them within one `session`, record each attempt as `deliver` does.
        Returns how many had each outcome ("skipped": delivered, failed, not due, or being
        sent by another worker)."""
        outcomes: Counter[str] = Counter()
        todo = list(dict.fromkeys(pks))
        while todo:
            chunk, todo = todo[: self.batch_size], todo[self.batch_size :]
            rows = self.claim_many(chunk)
            outcomes["skipped"] += len(chunk) - len(rows)
            todo = [row.pk for row in self._send_claimed(rows, outcomes)] + todo
        return dict(+outcomes)  # (without the zeros)

    def _send_claimed(self, rows: list[Any], outcomes: Counter[str]) -> list[Any]:
        """Send rows this worker holds within one session, recording each attempt; returns
        those handed back unsent."""
        with self.session() as session:
            for i, row in enumerate(rows):
                left = (row.locked_until - timezone.now()).total_seconds()
                if i and left < self.lease_seconds():
                    # Slow sends ate the lease: hand the rest back to be claimed again (a
                    # fresh lease) rather than send one the sweep may give to another worker.
                    self.release(rows[i:])
                    return rows[i:]
                outcomes[self._attempt(session, row)] += 1
        return []

    def _attempt(self, session: Any, row: Any) -> str:
        code, error = None, ""
        # Any exception counts as a failed attempt (e.g. a URL the HTTP client cannot parse):
        # otherwise the row would stay pending and be re-sent forever, never backed off, given
        # up on or recorded.
        try:
            code, error = self.send_in(session, row)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
        return self.record_attempt(row, code, error)

    def record_attempt(self, row: Any, code: int | None, error: str) -> str:
        now = timezone.now()
        fields: dict[str, Any] = {
            "last_status_code": code,
            "last_error": error,
            "locked_until": None,
        }
        with transaction.atomic():
            if not error:
                fields["status"], fields["delivered_at"] = OutboxItem.Status.DELIVERED, now
                outcome = "delivered"
            elif now >= row.give_up_at:
                fields["status"] = OutboxItem.Status.FAILED
                outcome = "failed"
            else:
                fields["next_attempt_at"] = now + dt.timedelta(
                    seconds=backoff_seconds(row.attempts)
                )
                fields["enqueued_at"] = None  # nothing in flight: the sweep sends it when due
                outcome = "retry"
            # Only while this attempt still holds the row: if its lease ran out, another
            # attempt (or a resend) has claimed the row since, and its outcome must not be
            # overwritten. `claim` set locked_until and bumped attempts; `row` holds the values
            # it stored.
            held = self.model.objects.filter(
                pk=row.pk,
                status=OutboxItem.Status.PENDING,
                locked_until=row.locked_until,
                attempts=row.attempts,
            ).update(**fields)
            if not held:
                log.warning(
                    "%s %s: attempt %s outlived its lease; its outcome (%s) is dropped",
                    self.name,
                    row.pk,
                    row.attempts,
                    outcome,
                )
                return "skipped: lease lost to another attempt"
            self.attempted(row, outcome, error)
            if outcome != "retry":
                self.finished(row, outcome, error)
        DELIVERY_ATTEMPTS.labels(self.name, outcome).inc()
        if error:
            log.info("%s %s: attempt %s failed (%s)", self.name, row.pk, row.attempts, error[:200])
        return outcome

    def resend(self, row: Any) -> None:
        """Send again now (delivered or failed ones too), keeping the same row (and id)."""
        now = timezone.now()
        self.model.objects.filter(pk=row.pk).update(
            status=OutboxItem.Status.PENDING,
            next_attempt_at=now,
            enqueued_at=now,
            locked_until=None,
            give_up_at=now + dt.timedelta(hours=self.retry_hours()),
        )
        transaction.on_commit(lambda: enqueue(self.task, str(row.pk), reason="resend"))

    def enqueue_due(self, now: dt.datetime | None = None, limit: int = 1000) -> int:
        """Pending rows that are due and whose task is not known to be in flight (not
        enqueued since their last attempt, or enqueued longer than the reconcile grace ago and
        so presumably lost)."""
        now = now or timezone.now()
        grace = now - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE)
        due = (
            self.model.objects.filter(status=OutboxItem.Status.PENDING, next_attempt_at__lte=now)
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
            .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=grace))
        )
        if self.batch_task:
            # Marked enqueued under the rows' lock (a sweep on another cluster skips them, or
            # reads them marked), then one task per batch.
            with transaction.atomic():
                pks = list(
                    due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit]
                )
                self.model.objects.filter(pk__in=pks).update(enqueued_at=now)
                keys = [str(pk) for pk in pks]
                transaction.on_commit(lambda: self._enqueue(keys, reason="sweep"))
            return len(pks)
        due = due.values_list("pk", flat=True)[:limit]
        count = 0
        for pk in list(due):
            with transaction.atomic():
                owed = self.model.objects.filter(pk=pk, status=OutboxItem.Status.PENDING)
                if owed.update(enqueued_at=now):
                    transaction.on_commit(lambda pk=pk: enqueue(self.task, str(pk), reason="sweep"))
                    count += 1
        return count
