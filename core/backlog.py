"""How far behind the background work is: the django-q2 task queue and the outbox.

- The task queue, through django-q2's broker (`get_broker()`): its depth (`queue_size()`:
  tasks waiting for a worker), the tasks taken and not yet acknowledged (`lock_size()`, the
  ORM broker only) and the age of the oldest waiting task. The ORM broker stores a task's
  enqueue time in its `lock` column (a worker's lease moves it `retry` seconds ahead, so a
  lease that ran out counts from the moment the task could be taken again); the Redis broker
  pushes to the tail of a list and pops from its head, so the oldest is the head, and the
  signed package it holds carries the time `async_task` built it (`started`).
- The outbox (every concrete `core.outbox.OutboxItem`: notifications, webhooks to agents,
  witness heads): the pending rows that are due and the age of the oldest of them, the lag
  people and agents see.

Each figure is one query (one Redis command), read when asked: `/metrics` at scrape time
(api.metrics), the managers' dashboard (oversight), and `BacklogWatch`, the loop in
`manage.py portald` that logs a warning while the cluster falls behind
(docs/production.md, "When the task queue falls behind").
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import BadSignature, SignedPackage

from core.leader import Leader, Lease, holder_name
from core.outbox import OutboxItem

log = logging.getLogger(__name__)

WATCH_LEASE = "hitl-backlog-watch"
# How often the watch looks (and, while behind, logs one warning).
WATCH_SECONDS = 60.0


@dataclass(frozen=True)
class TaskQueue:
    broker: str  # "orm", "redis", or the broker class's name
    depth: int  # waiting for a worker
    in_flight: int | None  # taken by a worker, not acknowledged yet (ORM broker; else None)
    oldest_age: float | None  # seconds the oldest waiting task has waited; None: empty/unknown


@dataclass(frozen=True)
class OutboxLag:
    kind: str  # the row model, "app_label.model"
    label: str  # for people: "webhook deliveries"
    due: int  # pending rows whose attempt is due (being sent, or waiting for a worker)
    oldest_due_age: float | None  # seconds since the oldest of them came due


@dataclass(frozen=True)
class Backlog:
    tasks: TaskQueue | None  # None: the broker could not be read (`tasks_error` says why)
    outbox: list[OutboxLag]
    tasks_error: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def behind(self) -> bool:
        return bool(self.warnings)


def _age(since: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if since is None else max((now - since).total_seconds(), 0.0)


def _redis_oldest_started(broker) -> dt.datetime | None:
    head = broker.connection.lindex(broker.list_key, 0)  # RPUSH to the tail, BLPOP the head
    if head is None:
        return None
    try:
        task = SignedPackage.loads(head.decode() if isinstance(head, bytes) else head)
    except BadSignature:  # signed with another SECRET_KEY (rotated): dropped by the workers too
        return None
    started = task.get("started") if isinstance(task, dict) else None
    return started if isinstance(started, dt.datetime) else None


def task_queue(now: dt.datetime | None = None) -> TaskQueue:
    """The broker's figures; raises what the broker raises (e.g. Redis unreachable)."""
    now = now or timezone.now()
    broker = get_broker()
    depth = int(broker.queue_size() or 0)
    if isinstance(broker, ORM):
        first = (
            OrmQ.objects.using(Conf.ORM)
            .filter(key=broker.list_key, lock__lte=now)
            .aggregate(first=Min("lock"))["first"]
        )
        return TaskQueue("orm", depth, int(broker.lock_size() or 0), _age(first, now))
    if type(broker).__name__ == "Redis":
        return TaskQueue("redis", depth, None, _age(_redis_oldest_started(broker), now))
    return TaskQueue(type(broker).__name__.lower(), depth, None, None)


def outbox_models() -> list[type[OutboxItem]]:
    return sorted(
        (m for m in apps.get_models() if issubclass(m, OutboxItem)),
        key=lambda m: m._meta.label_lower,
    )


def outbox_lag(now: dt.datetime | None = None) -> list[OutboxLag]:
    """Per outbox: the due pending rows and the oldest one's age (its partial index on
    `next_attempt_at WHERE status = 'pending'` where it has one)."""
    now = now or timezone.now()
    out = []
    for model in outbox_models():
        row = model._base_manager.filter(
            status=OutboxItem.Status.PENDING, next_attempt_at__lte=now
        ).aggregate(n=Count("pk"), first=Min("next_attempt_at"))
        label = f"{model._meta.app_config.verbose_name.lower()}: {model._meta.verbose_name_plural}"
        out.append(OutboxLag(model._meta.label_lower, label, row["n"], _age(row["first"], now)))
    return out


def snapshot(now: dt.datetime | None = None) -> Backlog:
    """Both, and what is behind (the thresholds HITL_TASK_QUEUE_WARN_SECONDS and
    HITL_OUTBOX_WARN_SECONDS), in words."""
    now = now or timezone.now()
    tasks, error = None, ""
    try:
        tasks = task_queue(now)
    except DatabaseError:  # the ORM broker's database: the caller's to handle
        raise
    except Exception as exc:  # Redis unreachable: the rest of the figures still count
        error = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("backlog: the task broker could not be read (%s)", error)
    outbox = outbox_lag(now)
    warnings = []
    limit = settings.HITL_TASK_QUEUE_WARN_SECONDS
    if tasks and tasks.oldest_age is not None and tasks.oldest_age > limit:
        warnings.append(
            f"the oldest queued task has waited {tasks.oldest_age:.0f} s "
            f"(over {limit} s; queue depth {tasks.depth})"
        )
    limit = settings.HITL_OUTBOX_WARN_SECONDS
    for lag in outbox:
        if lag.oldest_due_age is not None and lag.oldest_due_age > limit:
            warnings.append(
                f"the oldest due {lag.label} has waited {lag.oldest_due_age:.0f} s "
                f"(over {limit} s; {lag.due} due)"
            )
    return Backlog(tasks, outbox, error, warnings)


class BacklogWatch(Leader):
    """One leader among the portald processes looks every WATCH_SECONDS: while the cluster is
    behind it logs one WARNING per look (with the figures), and one INFO when it has caught up.
    """

    name = "backlog watch"

    def __init__(self, holder: str = "", every: float | None = None):
        self.every = every if every is not None else WATCH_SECONDS
        self.was_behind = False
        # a lease of two looks: a dead leader's successor takes over within two minutes
        super().__init__(Lease(WATCH_LEASE, holder or holder_name(), 2 * self.every))

    def check(self) -> Backlog:
        backlog = snapshot()
        if backlog.behind:
            log.warning(
                "background work is falling behind: %s. Add cluster workers (HITL_Q_WORKERS) "
                "or qcluster processes, or move the broker to Redis (REDIS_URL); see "
                "docs/production.md, 'When the task queue falls behind'",
                "; ".join(backlog.warnings),
            )
        elif self.was_behind:
            tasks = backlog.tasks
            log.info(
                "background work has caught up: %s tasks queued, oldest %s",
                tasks.depth if tasks else "?",
                f"{tasks.oldest_age:.0f} s" if tasks and tasks.oldest_age is not None else "none",
            )
        self.was_behind = backlog.behind
        return backlog

    def round(self) -> float:
        self.check()
        return self.every

    def failed(self, error: Exception) -> float:
        log.exception("backlog watch: round failed; retrying")
        return self.every
