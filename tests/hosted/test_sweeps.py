"""Expiry (batched), reconcile (lost resumes and executions, dead letters), housekeeping,
and the idempotent schedule."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule, Task

from agents.models import DeadLetter, Run
from agents.runtime.loop import drive
from agents.sweeps import reconcile
from agents.transitions import run_start
from approvals.models import Checkpoint
from approvals.sweeps import expire_overdue
from approvals.transitions import checkpoint_decide
from audit.events import Actor, verify_ledger
from audit.models import AuditEvent
from core.exceptions import Conflict
from hitlportal.housekeeping import housekeeping
from hitlportal.schedules import ensure_schedules
from hitlportal.sweeps import run_all
from tests.factories import PolicyFactory

TRANSFER = {"tool": "transfer", "args": {"amount": 100, "to": "acme"}}


def overdue(cp: Checkpoint, seconds: int = 5) -> None:
    Checkpoint.objects.filter(pk=cp.pk).update(
        deadline=timezone.now() - dt.timedelta(seconds=seconds)
    )


# --- expiry ---------------------------------------------------------------------------------


def test_it_expires_overdue_checkpoints_with_a_reason_and_resumes_the_run(
    ledger_agent, start, inline, sandbox
):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()
    overdue(cp)

    counts = inline(expire_overdue)

    assert counts == {"expired": 1, "escalated": 0, "lost_to_decision": 0}
    cp.refresh_from_db()
    assert cp.status == Checkpoint.Status.EXPIRED
    assert cp.resolution_reason.startswith("No decision within")
    assert cp.resolution_reason.endswith("auto-rejected")
    event = AuditEvent.objects.get(verb="checkpoint.expired")
    assert event.actor_label == "expiry-sweep" and event.data["reason"] == cp.resolution_reason
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED  # resumed, and told why
    assert run.result["not_done"][0]["why"] == f"expired: {cp.resolution_reason}"
    assert not (sandbox / "ledger.txt").exists()
    assert verify_ledger().ok


def test_it_escalates_once_then_expires(make_checkpoint, broker):
    PolicyFactory(
        name="esc",
        expiry_action="escalate",
        escalation_role="managers",
        escalation_timeout_seconds=600,
    )
    cp = make_checkpoint()
    untouched = make_checkpoint()
    overdue(cp)

    assert expire_overdue() == {"expired": 0, "escalated": 1, "lost_to_decision": 0}
    cp.refresh_from_db()
    assert cp.status == Checkpoint.Status.PENDING and cp.current_role == "managers"
    assert cp.escalated and cp.deadline > timezone.now() + dt.timedelta(seconds=590)
    assert broker.calls("agents.tasks.resume_run") == []

    overdue(cp)
    assert expire_overdue()["expired"] == 1
    cp.refresh_from_db()
    untouched.refresh_from_db()
    assert cp.status == Checkpoint.Status.EXPIRED
    assert untouched.status == Checkpoint.Status.PENDING
    assert list(AuditEvent.objects.filter(target_id=str(cp.pk)).values_list("verb", flat=True))[
        -2:
    ] == ["checkpoint.escalated", "checkpoint.expired"]


def test_it_expires_many_in_batches_exactly_once(agent, broker, inline):
    actor = Actor.for_agent(agent)
    from agents.services import Ask, ask

    cps = []
    for i in range(23):
        run = run_start(agent=agent, task=f"t{i}", actor=actor)
        cps.append(ask(run, [Ask(title=f"c{i}", action=TRANSFER)], actor=actor)[0])
    Checkpoint.objects.update(deadline=timezone.now() - dt.timedelta(seconds=1))

    assert inline(expire_overdue, batch=5)["expired"] == 23
    assert expire_overdue(batch=5)["expired"] == 0
    assert Checkpoint.objects.filter(status="expired").count() == 23
    assert AuditEvent.objects.filter(verb="checkpoint.expired").count() == 23
    assert Run.objects.filter(resume_requested_at__isnull=False).count() == 23
    assert sorted(a[0] for a in broker.calls("agents.tasks.resume_run")) == sorted(
        str(c.run_id) for c in cps
    )
    assert verify_ledger().ok


@pytest.mark.django_db(transaction=True)
def test_it_gives_exactly_one_outcome_when_a_reviewer_races_the_sweep(make_checkpoint, reviewer):
    cps = [make_checkpoint() for _ in range(30)]
    # The sweep's clock says everything is overdue while the reviewer still sees time left:
    # both go for the same rows at the same moment.
    sweep_now = timezone.now() + dt.timedelta(hours=1)
    barrier = threading.Barrier(2)
    decided: list[str] = []

    def reviewer_thread():
        barrier.wait()
        try:
            for cp in reversed(cps):
                try:
                    checkpoint_decide(cp.pk, reviewer, "approve")
                    decided.append(str(cp.pk))
                except Conflict:
                    pass
        finally:
            connection.close()

    def sweep_thread():
        barrier.wait()
        try:
            for _ in range(20):
                expire_overdue(now=sweep_now, batch=3)
        finally:
            connection.close()

    threads = [threading.Thread(target=reviewer_thread), threading.Thread(target=sweep_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    final = {str(k): v for k, v in Checkpoint.objects.values_list("id", "status")}
    assert set(final.values()) <= {"approved", "expired"}
    assert sorted(decided) == sorted(k for k, v in final.items() if v == "approved")
    for cp in cps:
        outcomes = AuditEvent.objects.filter(
            target_id=str(cp.pk), verb__in=["checkpoint.approved", "checkpoint.expired"]
        ).values_list("verb", flat=True)
        assert list(outcomes) == [f"checkpoint.{final[str(cp.pk)]}"]  # one, never both
    assert verify_ledger().ok


# --- reconcile ------------------------------------------------------------------------------


def test_it_re_enqueues_a_resume_that_was_lost(make_checkpoint, reviewer, broker, settings):
    settings.HITL_RECONCILE_GRACE = 0
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")  # on-commit enqueue never runs in this test
    assert broker.calls("agents.tasks.resume_run") == []

    with_commit = reconcile()
    assert with_commit["resumes_enqueued"] == 1


def test_it_re_enqueues_an_execution_that_never_started_or_died(
    ledger_agent, broker, settings, starter
):
    settings.HITL_RECONCILE_GRACE = 0
    agent = ledger_agent([[{"tool": "note", "args": {"text": "x"}}]])
    never = run_start(agent=agent, task="never started", actor=Actor.system())
    died = run_start(agent=agent, task="worker died", actor=Actor.system())
    Run.objects.filter(pk=died.pk).update(
        lease_owner="w1", lease_expires_at=timezone.now() - dt.timedelta(1)
    )
    alive = run_start(agent=agent, task="alive", actor=Actor.system())
    Run.objects.filter(pk=alive.pk).update(
        lease_owner="w2", lease_expires_at=timezone.now() + dt.timedelta(1)
    )

    assert reconcile()["executions_enqueued"] == 2
    assert Run.objects.get(pk=never.pk).resume_attempts == 1
    # the died run continues from its state once re-executed
    assert drive(died.pk) == "completed"


def test_it_backs_off_and_dead_letters_work_that_keeps_failing(
    ledger_agent, broker, settings, admin_client
):
    settings.HITL_RECONCILE_GRACE = 60
    settings.HITL_MAX_RESUME_ATTEMPTS = 3
    agent = ledger_agent([[{"tool": "note", "args": {"text": "x"}}]])
    run = run_start(agent=agent, task="crashes every time", actor=Actor.system())
    Run.objects.filter(pk=run.pk).update(
        resume_attempts=2, resume_requested_at=timezone.now() - dt.timedelta(seconds=90)
    )
    # attempt 2 waits 2 x grace = 120 s: not yet
    assert reconcile()["executions_enqueued"] == 0

    later = timezone.now() + dt.timedelta(seconds=60)
    counts = reconcile(now=later)
    assert (counts["resumes_enqueued"], counts["executions_enqueued"]) == (0, 1)
    assert counts["dead_lettered"] == 0
    Run.objects.filter(pk=run.pk).update(resume_requested_at=timezone.now() - dt.timedelta(1))
    assert reconcile()["dead_lettered"] == 1

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error == "dead-lettered: execution did not complete after 3 attempts"
    letter = DeadLetter.objects.get()
    assert letter.kind == DeadLetter.Kind.EXECUTE and letter.run_id == run.pk
    page = admin_client.get(reverse("admin:agents_deadletter_changelist"))
    assert page.status_code == 200 and "execution did not complete" in page.content.decode()
    assert AuditEvent.objects.filter(verb="run.failed", target_id=str(run.pk)).exists()


# --- housekeeping and schedules ---------------------------------------------------------------


def test_it_purges_old_finished_task_rows(db, settings):
    settings.HITL_TASK_RETENTION_HOURS = 24
    now = timezone.now()
    for i, age in enumerate([1, 30, 100]):
        Task.objects.create(
            id=f"t{i}",
            name=f"t{i}",
            func="x",
            started=now,
            success=True,
            stopped=now - dt.timedelta(hours=age),
        )
    assert housekeeping()["task_rows_purged"] == 2
    assert list(Task.objects.values_list("id", flat=True)) == ["t0"]


def test_it_runs_every_sweep_from_one_entry_point(db):
    assert set(run_all()) == {
        "sla",
        "expiry",
        "drills",
        "reconcile",
        "notifications",
        "housekeeping",
        "rollups",
        "ledger",
    }
    out = __import__("io").StringIO()
    call_command("sweep", stdout=out)
    assert '"expiry"' in out.getvalue()


def test_it_registers_the_sweep_schedule_once(db):
    ensure_schedules()
    Schedule.objects.create(name="hitl-sweep", func="hitlportal.sweeps.run_all")  # a race left
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    ensure_schedules()
    rows = Schedule.objects.filter(name="hitl-sweep")
    assert rows.count() == 1 and rows.get().func == "hitlportal.sweeps.run_all"
