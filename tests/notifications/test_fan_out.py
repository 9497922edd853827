"""The fan-out after commit: the transaction of the change records the Notice only; one task
per transaction, enqueued at commit, finds the recipients and writes the deliveries; the
sweep fans out a notice whose task was lost; a notice is fanned out once, however many
tasks, sweeps and workers get to it at the same time."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework.test import APIClient

from agents.services import AGENT_KEYS
from agents.transitions import run_start
from audit.events import Actor
from notifications import sweeps
from notifications.events import FAN_OUT_TASK, Spec, announce_many
from notifications.models import Delivery, Notice
from notifications.outbox import OUTBOX
from notifications.tasks import fan_out

ASK = {
    "title": "Delete old logs",
    "risk": "medium",
    "action": {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}},
}


def run_queued(broker, func: str) -> list:
    """What a cluster would do with the tasks of `func` waiting on the ORM broker."""
    return [import_string(func)(*args) for args in broker.calls(func)]


@pytest.mark.django_db(transaction=True)
def test_the_create_records_the_notice_and_the_task_fans_it_out_after_commit(
    agent, ops_team, smtp, broker
):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {AGENT_KEYS.create(agent, Actor.system('t'))}")
    run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent))
    with CaptureQueriesContext(connection) as create:
        response = api.post(
            "/api/v1/checkpoints/",
            json.dumps({"run": str(run.pk), **ASK}),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
    assert response.status_code == 201, response.content

    # The request's transaction wrote the notice, and read or wrote nothing else of
    # notifications: no channels, people, preferences or deliveries.
    touched = [q["sql"] for q in create.captured_queries if "notifications_" in q["sql"]]
    assert len(touched) == 1 and touched[0].startswith('INSERT INTO "notifications_notice"')
    notice = Notice.objects.get()
    assert (str(notice.checkpoint_id), notice.event, notice.role) == (
        response.json()["id"],
        "checkpoint.requested",
        "ops",
    )
    assert notice.fanned_out_at is None and not Delivery.objects.exists()
    # One fan-out task, enqueued at commit, with the notice.
    assert broker.calls(FAN_OUT_TASK) == [([notice.pk],)]
    assert broker.calls(OUTBOX.task) == []

    # The cluster runs it: the deliveries, sent by the same task once they are committed
    # (issue 20: no task per recipient), over one SMTP connection.
    assert run_queued(broker, FAN_OUT_TASK) == ["fanned out 1 of 1 notice(s)"]
    notice.refresh_from_db()
    assert notice.fanned_out_at is not None
    owed = Delivery.objects.filter(notice=notice)
    assert sorted(owed.values_list("address", "status", "attempts")) == [
        ("raj@example.com", "delivered", 1),
        ("rita@example.com", "delivered", 1),
    ]
    assert broker.calls(OUTBOX.task) == [] and broker.calls(OUTBOX.batch_task) == []
    mails = smtp.wait_for(2)
    assert smtp.connections == 1
    assert sorted(a for m in mails for a in m.recipients) == [
        "raj@example.com",
        "rita@example.com",
    ]
    assert {m.subject for m in mails} == {"[HITL] Approval needed: Delete old logs"}


@pytest.mark.django_db(transaction=True)
def test_one_task_fans_out_every_notice_of_a_transaction(make_checkpoint, ops_team, broker):
    with transaction.atomic():
        make_checkpoint(title="First")
        make_checkpoint(title="Second")
    ids = sorted(Notice.objects.values_list("pk", flat=True))
    [(task_ids,)] = broker.calls(FAN_OUT_TASK)
    assert sorted(task_ids) == ids and len(ids) == 2
    # A transaction that rolls back enqueues nothing.
    with pytest.raises(RuntimeError), transaction.atomic():
        make_checkpoint(title="Third")
        raise RuntimeError("the request fails")
    assert len(broker.calls(FAN_OUT_TASK)) == 1 and Notice.objects.count() == 2


@pytest.mark.django_db
def test_it_records_each_event_once_and_returns_the_new_ones(make_checkpoint):
    """One INSERT ... ON CONFLICT DO NOTHING RETURNING per batch of rows (SQLite takes 124 of
    these a statement): what was recorded before is skipped, each new row gets its own id."""
    cp = make_checkpoint()

    def specs(n: int) -> list[Spec]:
        return [Spec(cp, "checkpoint.reminder", str(i), "ops", data={"i": i}) for i in range(n)]

    first = announce_many(specs(130))
    assert len(first) == 130
    again = announce_many(specs(140))  # a sweep that runs twice, with ten more
    assert sorted(int(n.occurrence) for n in again) == list(range(130, 140))
    recorded = {
        occurrence: (pk, data)
        for pk, occurrence, data in Notice.objects.filter(event="checkpoint.reminder").values_list(
            "pk", "occurrence", "data"
        )
    }
    assert len(recorded) == 140
    assert {n.occurrence: (n.pk, n.data) for n in first + again} == recorded


@pytest.mark.django_db
def test_the_sweep_fans_out_a_notice_whose_task_was_lost_once(
    make_checkpoint, ops_team, smtp, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as lost:  # never run: the task is lost
        make_checkpoint()
    notice = Notice.objects.get()
    assert notice.fanned_out_at is None and not Delivery.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["fanned_out"] == 0  # within the grace: its task may be coming
    assert not Delivery.objects.exists()

    Notice.objects.update(
        created_at=timezone.now() - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["fanned_out"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["fanned_out"] == 0  # the next minute, or another cluster
    notice.refresh_from_db()
    assert notice.fanned_out_at is not None
    assert len(smtp.wait_for(2)) == 2

    # The lost task turns up after all (a redelivery, a slow broker): nothing doubles.
    assert fan_out([notice.pk]) == "fanned out 0 of 1 notice(s)"
    with django_capture_on_commit_callbacks(execute=True):
        for callback in lost:
            callback()
    assert Delivery.objects.filter(notice=notice).count() == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    assert sorted(a for m in smtp.mails for a in m.recipients) == [
        "raj@example.com",
        "rita@example.com",
    ]


@pytest.mark.django_db
def test_a_notice_that_cannot_be_fanned_out_holds_back_no_other(
    make_checkpoint, ops_team, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from notifications import events

    with django_capture_on_commit_callbacks():  # both tasks lost
        bad, good = make_checkpoint(title="Bad"), make_checkpoint(title="Good")
    Notice.objects.update(
        created_at=timezone.now() - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE + 1)
    )
    owe = events._owe

    def failing(pairs, **kwargs):
        if any(n.checkpoint_id == bad.pk for _s, n in pairs):
            raise ValueError("a bug")
        owe(pairs, **kwargs)

    monkeypatch.setattr(events, "_owe", failing)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["fanned_out"] == 1
    assert Delivery.objects.filter(notice__checkpoint=good).count() == 2
    assert Notice.objects.get(checkpoint=bad).fanned_out_at is None  # tried again next time
    monkeypatch.setattr(events, "_owe", owe)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run()["fanned_out"] == 1
    assert Delivery.objects.filter(notice__checkpoint=bad).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_fan_outs_of_one_notice_at_once_owe_one_set_of_deliveries(
    make_checkpoint, ops_team, broker
):
    """Two workers (a redelivered task, the sweep) at the same instant: a free race, then each
    side holding its transaction open (the notice's lock) while the other starts."""
    from notifications.events import fan_out as claim_and_owe
    from tests.test_races import race

    for hold in (None, 0, 1, None, 0, 1):
        cp = make_checkpoint()  # committed; its task waits on the broker, unrun
        notice = Notice.objects.get(checkpoint=cp)
        results = race(
            lambda pk=notice.pk: claim_and_owe([pk]),
            lambda pk=notice.pk: claim_and_owe([pk]),
            hold=hold,
        )
        assert sorted(results) == [("ok", 0), ("ok", 1)], results
        owed = Delivery.objects.filter(notice=notice)
        assert sorted(owed.values_list("address", flat=True)) == [
            "raj@example.com",
            "rita@example.com",
        ]
        # each send enqueued once (in one batch task), by the fan-out that won
        ids = {str(d.pk) for d in owed}
        sends = [pk for (pks,) in broker.calls(OUTBOX.batch_task) for pk in pks if pk in ids]
        assert sorted(sends) == sorted(ids)


@pytest.mark.django_db
def test_a_notice_written_by_a_process_on_the_old_code_is_not_owed_twice(
    make_checkpoint, ops_team, settings
):
    """A rolling upgrade: a process still on the code before the fan-out inserts its notice
    without `people` (the column's database default fills it) and writes its deliveries in
    the same transaction, leaving `fanned_out_at` empty. The sweep claims it, owes nothing."""
    cp = make_checkpoint()
    Notice.objects.all().delete()
    Delivery.objects.all().delete()
    at = timezone.now() - dt.timedelta(seconds=settings.HITL_RECONCILE_GRACE + 5)
    table = Notice._meta.db_table
    with connection.cursor() as cursor:  # the old code's INSERT: no people, no fanned_out_at
        cursor.execute(
            f"INSERT INTO {table} (checkpoint_id, event, occurrence, role, data, created_at) "
            "VALUES (%s, %s, '', 'ops', %s, %s)",
            [cp.pk.hex if connection.vendor == "sqlite" else cp.pk, "checkpoint.requested",
             "{}", at],
        )  # fmt: skip
    notice = Notice.objects.get()
    assert notice.people == [] and notice.fanned_out_at is None
    old = Delivery.objects.create(
        notice=notice, event=notice.event, channel="email", target="user:1",
        next_attempt_at=at, give_up_at=at + dt.timedelta(hours=1),
    )  # fmt: skip
    assert sweeps.run()["fanned_out"] == 1  # claimed
    notice.refresh_from_db()
    assert notice.fanned_out_at is not None
    assert list(Delivery.objects.all()) == [old]  # and nothing owed again
