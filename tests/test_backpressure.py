"""Back-pressure you can see: the task queue's depth and its oldest task's age (ORM and Redis
broker) and the outbox's due rows, on /metrics and on the managers' dashboard, and portald's
backlog watch logging a warning while the cluster falls behind and once when it caught up."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import uuid

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ

from agents.models import WebhookDelivery
from approvals.transitions import checkpoint_decide
from core.backlog import BacklogWatch, snapshot
from core.queue import enqueue
from tests.api.test_metrics import samples

pytestmark = pytest.mark.django_db
T0 = timezone.now().replace(microsecond=0)
ORM_DEPTH = ("hitl_task_queue_depth", (("broker", "orm"),))
ORM_OLDEST = ("hitl_task_queue_oldest_age_seconds", (("broker", "orm"),))
ORM_TAKEN = ("hitl_task_queue_in_flight", (("broker", "orm"),))
WEBHOOKS_DUE = ("hitl_outbox_due", (("kind", "agents.webhookdelivery"),))
WEBHOOKS_OLDEST = ("hitl_outbox_oldest_due_age_seconds", (("kind", "agents.webhookdelivery"),))
BEHIND = ("hitl_background_behind", ())


def at(seconds: float):
    return time_machine.travel(T0 + dt.timedelta(seconds=seconds), tick=False)


@pytest.fixture
def scrape(client, settings):
    settings.HITL_METRICS_ALLOW = ["127.0.0.1/32"]
    settings.HITL_METRICS_TOKEN = ""

    def read(after: float) -> dict:
        with at(after):
            response = client.get("/metrics")
        assert response.status_code == 200
        return samples(response.content.decode())

    return read


def test_it_reports_the_orm_queue_its_oldest_task_and_the_tasks_being_run(broker, scrape):
    assert scrape(0)[ORM_DEPTH] == 0 and scrape(0)[ORM_OLDEST] == 0
    with at(0):
        enqueue("math.floor", 1.5)
    with at(30):
        enqueue("math.floor", 2.5)
    got = scrape(90)
    assert got[ORM_DEPTH] == 2
    assert got[ORM_OLDEST] == 90
    assert got[ORM_TAKEN] == 0
    assert got[BEHIND] == 1  # over HITL_TASK_QUEUE_WARN_SECONDS (60)
    # a worker takes both (django-q2's own dequeue: the lock moves `retry` seconds ahead)
    with at(91):
        assert len(get_broker().dequeue()) == 2
    got = scrape(92)
    assert (got[ORM_DEPTH], got[ORM_TAKEN], got[ORM_OLDEST], got[BEHIND]) == (0, 2, 0, 0)
    # the worker died: once its lease ran out the tasks wait again, from that moment
    got = scrape(91 + Conf.RETRY + 10)
    assert (got[ORM_DEPTH], got[ORM_TAKEN], got[ORM_OLDEST]) == (2, 0, 10)


def test_a_batched_enqueue_counts_like_one_by_one(broker, scrape):
    """`core.queue.batched` inserts the OrmQ rows itself, with the same `lock` django-q2 sets."""
    from core.queue import batched

    with at(0), batched():
        for n in range(5):
            enqueue("math.floor", n + 0.5)
    assert OrmQ.objects.count() == 5
    got = scrape(45)
    assert (got[ORM_DEPTH], got[ORM_OLDEST], got[BEHIND]) == (5, 45, 0)


def test_it_reports_the_due_outbox_rows_and_the_oldest_ones_age(
    broker, scrape, agent, reviewer, make_checkpoint, private_urls,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    agent.callback_url = "http://127.0.0.1:18399/hook"  # never sent: no cluster runs
    agent.save()
    with at(0):
        cp = make_checkpoint()
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint_decide(cp.pk, reviewer, "approve")
    assert WebhookDelivery.objects.get().status == "pending"
    got = scrape(100)
    assert got[WEBHOOKS_DUE] == 1 and got[WEBHOOKS_OLDEST] == 100
    kinds = {labels[0][1] for name, labels in got if name == "hitl_outbox_due"}
    assert kinds == {"agents.webhookdelivery", "core.witnessdelivery", "notifications.delivery"}
    assert got[ORM_DEPTH] >= 1  # its send task waits in the queue
    # not due yet (a retry after backoff) is not lag
    WebhookDelivery.objects.update(next_attempt_at=T0 + dt.timedelta(seconds=200))
    got = scrape(150)
    assert got[WEBHOOKS_DUE] == 0 and got[WEBHOOKS_OLDEST] == 0
    # the outbox's own threshold: 300 s by default
    OrmQ.objects.all().delete()
    assert scrape(499)[BEHIND] == 0
    assert scrape(501)[BEHIND] == 1


# --- the dashboard --------------------------------------------------------------------------


@pytest.fixture
def dashboard(client, manager):
    """The managers' dashboard at T0 + `after` seconds, as a manager sees it."""
    client.force_login(manager)

    def read(after: float) -> str:
        with at(after):
            response = client.get(reverse("admin:oversight_dashboard"))
        assert response.status_code == 200
        return response.content.decode()

    return read


def test_the_dashboard_warns_when_the_oldest_task_is_older_than_the_threshold(
    broker, dashboard, settings
):
    page = dashboard(0)
    assert "Background work" in page and "falling behind" not in page
    with at(0):
        enqueue("math.floor", 1.5)
        enqueue("math.floor", 2.5)
    page = dashboard(59)
    assert 'data-stat="task-depth"><span class="stat-n">2<' in page
    assert 'data-stat="task-oldest"><span class="stat-n">59 s<' in page
    assert "falling behind" not in page
    page = dashboard(75)
    assert "The task cluster is falling behind" in page
    assert "the oldest queued task has waited 75 s (over 60 s; queue depth 2)" in page
    assert "When the task queue falls behind" in page and "docs/production.md" in page
    settings.HITL_DOCS_URL = "https://docs.example.com/hitl"
    page = dashboard(75)
    link = "https://docs.example.com/hitl/production/#when-the-task-queue-falls-behind"
    assert f'href="{link}"' in page
    settings.HITL_TASK_QUEUE_WARN_SECONDS = 120
    assert "falling behind" not in dashboard(75)


def test_the_dashboard_lists_the_outbox_backlog(dashboard):
    page = dashboard(0)
    for kind in ("agents.webhookdelivery", "notifications.delivery", "core.witnessdelivery"):
        assert f'data-outbox="{kind}"' in page
    assert "Agents: webhook deliveries" in page


# --- the log --------------------------------------------------------------------------------


def test_the_watch_warns_once_per_look_while_behind_and_once_when_caught_up(broker, caplog):
    watch = BacklogWatch(holder="test-watch", every=60)

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "core.backlog"]

    with caplog.at_level(logging.INFO, logger="core.backlog"):
        with at(0):
            enqueue("math.floor", 1.5)
            watch.tick()
        with at(30):
            watch.tick()
        assert logged() == []  # queued, not behind
        with at(61):
            watch.tick()
        (warning,) = logged()
        assert warning.levelno == logging.WARNING
        assert "falling behind: the oldest queued task has waited 61 s" in warning.getMessage()
        assert "HITL_Q_WORKERS" in warning.getMessage() and "REDIS_URL" in warning.getMessage()
        with at(121):
            watch.tick()
        assert [r.levelno for r in logged()] == [logging.WARNING] * 2  # one per look
        # a second portald stands by: it neither looks nor logs (at a time of the test's, not
        # the wall clock's: T0 is when the module was imported, minutes ago in a long run)
        with at(100):
            assert BacklogWatch(holder="another-portald", every=60).tick() == 60
        assert len(logged()) == 2
        get_broker().purge_queue()  # the cluster caught up
        with at(181):
            watch.tick()
        with at(241):
            watch.tick()
    assert [r.levelno for r in logged()] == [logging.WARNING, logging.WARNING, logging.INFO]
    assert "caught up: 0 tasks queued, oldest none" in logged()[-1].getMessage()


# --- Redis ----------------------------------------------------------------------------------


def redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def redis_broker(monkeypatch, broker):
    """django-q2's Redis broker on 127.0.0.1:6379 (db 15), on a list of this test's own."""
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:6379/15")
    monkeypatch.setattr(Conf, "DJANGO_REDIS", None)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", f"hitl-test-{uuid.uuid4().hex[:8]}")
    redis = get_broker()
    assert type(redis).__name__ == "Redis"
    yield redis
    redis.delete_queue()


@pytest.mark.skipif(not redis_up(), reason="needs Redis on 127.0.0.1:6379 (apt-get install redis)")
def test_it_reports_the_redis_queue_and_its_oldest_task(redis_broker, scrape, dashboard):
    key = ("hitl_task_queue_depth", (("broker", "redis"),))
    oldest = ("hitl_task_queue_oldest_age_seconds", (("broker", "redis"),))
    got = scrape(0)
    assert got[key] == 0 and got[oldest] == 0
    assert ("hitl_task_queue_in_flight", (("broker", "redis"),)) not in got  # Redis can't tell
    with at(0):
        enqueue("math.floor", 1.5)
    with at(20):
        enqueue("math.floor", 2.5)
    got = scrape(80)
    assert got[key] == 2 and got[oldest] == 80 and got[BEHIND] == 1
    assert "the oldest queued task has waited 80 s" in dashboard(80)
    redis_broker.dequeue()  # BLPOP: the oldest goes first
    got = scrape(80)
    assert got[key] == 1 and got[oldest] == 60 and got[BEHIND] == 0


def test_a_broker_it_cannot_reach_leaves_the_task_figures_out_not_the_page(
    monkeypatch, broker, scrape, dashboard
):
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:18399/0")  # nothing listens there
    monkeypatch.setattr(Conf, "DJANGO_REDIS", None)
    got = scrape(0)
    assert not [name for name, _ in got if name.startswith("hitl_task_queue")]
    assert WEBHOOKS_DUE in got and ("hitl_sla_breaching", ()) in got
    page = dashboard(0)
    assert "the task broker could not be read: ConnectionError" in page
    assert snapshot().tasks is None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_portald_warns_and_a_real_cluster_works_the_queue_off(clusters, scrape):
    """What operators run: `portald` logs the warning for a queue nobody works, `/metrics`
    says so, and once a `qcluster` runs the queue drains and the gauges say that too."""
    from tests.cluster import wait_for

    for n in range(3):
        enqueue("math.floor", n + 0.5)
    OrmQ.objects.update(lock=timezone.now() - dt.timedelta(seconds=300))
    portald = clusters("portald")
    wait_for(
        lambda: "background work is falling behind" in portald.log.read_text(),
        30,
        "portald's backlog watch to warn",
    )
    line = next(x for x in portald.log.read_text().splitlines() if "falling behind" in x)
    assert "WARNING core.backlog" in line and "queue depth 3" in line
    got = scrape((timezone.now() - T0).total_seconds())
    assert got[ORM_DEPTH] == 3 and got[ORM_OLDEST] >= 300 and got[BEHIND] == 1
    clusters()  # a worker at last: it runs the three and its own ping
    wait_for(lambda: not OrmQ.objects.exists(), 30, "the cluster to drain the queue")
    got = scrape((timezone.now() - T0).total_seconds())
    assert (got[ORM_DEPTH], got[ORM_OLDEST], got[BEHIND]) == (0, 0, 0)
