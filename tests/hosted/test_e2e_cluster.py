"""End to end with real `manage.py qcluster` subprocesses against the test database (a SQLite
file or PostgreSQL): the acceptance scenario, a SIGKILLed worker, and the schedule on two
clusters. Slow by nature (process start-up, the scheduler's 30 s cycle)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django_q.models import Schedule, Task

from agents.models import Run, RunStep
from agents.runtime import start_hosted_run
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_decide
from audit.events import Actor, verify_ledger
from audit.models import AuditEvent
from hitlportal.sweeps import run_all
from tests.cluster import wait_for
from tests.hosted.agents import ledger_lines
from tests.hosted.conftest import make_logs

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

JANITOR = "agents.builtin.log_janitor.LogJanitor"


def run_status(run: Run, *statuses: str) -> bool:
    run.refresh_from_db()
    return run.status in statuses


def decide(cp: Checkpoint, user, outcome: str, **kwargs) -> None:
    """Through the REST API when it is installed, else the same transition it calls."""
    try:
        url = reverse("api-decision", args=[cp.pk])
    except NoReverseMatch:
        checkpoint_decide(cp.pk, user, outcome, channel="api", **kwargs)
        return
    from approvals.services import user_token_create

    token = user_token_create(user, name="e2e", scope="decide")
    resp = Client().post(
        url,
        {"outcome": outcome, **kwargs},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert resp.status_code == 200, resp.content


def test_it_runs_the_log_janitor_end_to_end(clusters, hosted, sandbox, starter, reviewer):
    clusters()
    clusters("portald")  # the deadline timer (and the sequencer), as `make run` starts them
    agent = hosted("log-janitor", JANITOR)

    def start(path: Path, **extra) -> Run:
        return start_hosted_run(
            agent=agent,
            task="Delete all log files older than 7 days",
            input={"path": str(path), "older_than_days": 7, **extra},
            created_by=starter,
            actor=Actor.for_user(starter),
        )

    # approve: exactly the old files are listed, exactly those are deleted
    logs = make_logs(sandbox / "a", {"old.log": 8, "deep/old.log": 40, "new.log": 2, "old.txt": 40})
    run = start(sandbox / "a")
    wait_for(lambda: run_status(run, "waiting"), what="the run to pause")
    cp = run.checkpoints.get()
    assert sorted(f["path"] for f in cp.action["args"]["files"]) == sorted(
        [str(logs["old.log"]), str(logs["deep/old.log"])]
    )
    decide(cp, reviewer, "approve")
    wait_for(lambda: run_status(run, "completed"), 5, "the approved run to complete")
    assert not logs["old.log"].exists() and not logs["deep/old.log"].exists()
    assert logs["new.log"].exists() and logs["old.txt"].exists()
    assert run.result["done"][0]["result"]["deleted"] == 2

    # reject: nothing deleted, the run reports the rejection
    logs = make_logs(sandbox / "b", {"old.log": 8})
    run = start(sandbox / "b")
    wait_for(lambda: run_status(run, "waiting"), what="the run to pause")
    decide(run.checkpoints.get(), reviewer, "reject", comment="still needed")
    wait_for(lambda: run_status(run, "completed"), 5, "the rejected run to finish")
    assert logs["old.log"].exists()
    assert run.result["summary"] == "Deleted nothing: rejected by rita: still needed"

    # short timeout: portald's deadline timer auto-rejects it on time, with a logged
    # reason, nothing deleted (the per-minute sweep would find nothing left)
    logs = make_logs(sandbox / "c", {"old.log": 8})
    agent.config = {"approval_timeout_seconds": 1}
    agent.save()
    run = start(sandbox / "c")
    wait_for(lambda: run_status(run, "waiting"), what="the run to pause")
    wait_for(lambda: run_status(run, "completed"), 10, "the expired run to finish")
    assert run_all()["expiry"]["expired"] == 0
    cp = run.checkpoints.get()
    assert cp.status == Checkpoint.Status.EXPIRED and "auto-rejected" in cp.resolution_reason
    assert logs["old.log"].exists()
    assert run.result["summary"] == f"Deleted nothing: expired: {cp.resolution_reason}"
    agent.config = {}
    agent.save()

    # resume latency: decision committed → the resume task's first write (run.resumed)
    latencies = []
    for i in range(5):
        make_logs(sandbox / f"d{i}", {"old.log": 8})
        run = start(sandbox / f"d{i}")
        wait_for(lambda run=run: run_status(run, "waiting"), what="the run to pause")
        cp = run.checkpoints.get()
        decide(cp, reviewer, "approve")
        resumed = wait_for(
            lambda run=run: AuditEvent.objects.filter(
                verb="run.resumed", target_id=str(run.pk)
            ).first(),
            5,
            "the resume",
        )
        approved = AuditEvent.objects.get(verb="checkpoint.approved", target_id=str(cp.pk))
        latencies.append((resumed.at - approved.at).total_seconds() * 1000)
        wait_for(lambda run=run: run_status(run, "completed"), 5, "completion")
    print(
        f"\nresume latency over {len(latencies)} decisions: "
        f"p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms"
    )
    assert verify_ledger().ok


def test_it_survives_a_killed_cluster_without_repeating_an_effect(
    clusters, ledger_agent, sandbox, starter, reviewer
):
    cluster = clusters()
    agent = ledger_agent(
        [[{"tool": "transfer", "args": {"amount": 5, "to": "acme"}}]], effect_delay=30
    )
    run = start_hosted_run(
        agent=agent, task="pay", input={}, created_by=starter, actor=Actor.for_user(starter)
    )
    wait_for(lambda: run_status(run, "waiting"), what="the run to pause")
    decide(run.checkpoints.get(), reviewer, "approve")
    # the resume is mid-effect: the ledger line is written, the tool is still running
    wait_for(lambda: ledger_lines(sandbox / "ledger.txt"), 10, "the effect to start")
    cluster.kill()
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    assert RunStep.objects.get(run=run).status == RunStep.Status.STARTED

    clusters()
    # the lease lapses (2 s); the reconcile sweep hands the run to the new cluster
    wait_for(lambda: run_all()["reconcile"]["executions_enqueued"], 15, "reconcile")
    wait_for(lambda: run_status(run, "completed"), 15, "the run to complete")

    assert len(ledger_lines(sandbox / "ledger.txt")) == 1  # the effect happened once
    step = RunStep.objects.get(run=run)
    assert step.status == RunStep.Status.SUCCEEDED and step.attempts == 2
    assert run.result["done"][0]["tool"] == "transfer"
    assert verify_ledger().ok


def test_it_registers_the_sweep_once_and_runs_it_once_on_two_clusters(clusters, make_checkpoint):
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    assert Schedule.objects.filter(name="hitl-sweep").count() == 1
    cp = make_checkpoint()
    Checkpoint.objects.filter(pk=cp.pk).update(deadline=timezone.now() - dt.timedelta(1))
    Schedule.objects.filter(name="hitl-sweep").update(next_run=timezone.now())

    clusters()
    clusters()
    # each cluster's scheduler looks every ~30 s; both find the due schedule
    wait_for(
        lambda: Task.objects.filter(func="hitlportal.sweeps.run_all").exists(),
        45,
        "the scheduled sweep",
    )
    time.sleep(3)

    assert Schedule.objects.filter(name="hitl-sweep").count() == 1
    assert Task.objects.filter(func="hitlportal.sweeps.run_all").count() == 1
    cp.refresh_from_db()
    assert cp.status == Checkpoint.Status.EXPIRED
    assert AuditEvent.objects.filter(verb="checkpoint.expired").count() == 1
