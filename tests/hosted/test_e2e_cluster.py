"""End to end with real `manage.py qcluster` subprocesses against the test database (a SQLite
file or PostgreSQL): the acceptance scenario, a SIGKILLed worker, and the schedule on two
clusters. Slow by nature (process start-up, the scheduler's 30 s cycle)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Task
from django_q.tasks import async_task

from agents.models import Run, RunStep
from agents.runtime import start_hosted_run
from approvals.audit import Actor, verify_chain
from approvals.models import AuditEvent, Checkpoint
from approvals.transitions import checkpoint_decide
from hitlportal.sweeps import run_all
from tests.hosted.agents import ledger_lines
from tests.hosted.conftest import make_logs

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

JANITOR = "agents.builtin.log_janitor.LogJanitor"


def wait_for(check, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def database_url() -> str:
    db = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Cluster:
    """One `qcluster` process group, started and stopped by pid."""

    def __init__(self, env: dict, log: Path):
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Cluster:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def clusters(sandbox, tmp_path, settings):
    """Start clusters on a queue of their own; this process enqueues to the same queue."""
    settings.HITL_RECONCILE_GRACE = 1  # this process runs the sweeps by hand
    name = f"hitl-hosted-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "HITL_Q_NAME": name,
        "HITL_Q_SYNC": "0",
        "HITL_Q_WORKERS": "2",
        "HITL_SANDBOX_ROOTS": str(sandbox),
        "HITL_RUN_LEASE": "2",
        "HITL_RECONCILE_GRACE": "1",
        "DEBUG": "1",
        "SECRET_KEY": settings.SECRET_KEY,
    }
    saved = Conf.CLUSTER_NAME, Conf.PREFIX, Conf.SYNC
    Conf.CLUSTER_NAME = Conf.PREFIX = name
    Conf.SYNC = False
    started: list[Cluster] = []

    def start() -> Cluster:
        cluster = Cluster(env, tmp_path / f"qcluster-{len(started)}.log").start()
        started.append(cluster)
        ping = async_task("math.floor", 1.5)  # ready once it has run a task
        wait_for(
            lambda: Task.objects.filter(id=ping, success=True).exists(), 30, "the cluster to start"
        )
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
    Conf.CLUSTER_NAME, Conf.PREFIX, Conf.SYNC = saved


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

    # short timeout: the sweep auto-rejects with a logged reason, nothing deleted
    logs = make_logs(sandbox / "c", {"old.log": 8})
    agent.config = {"approval_timeout_seconds": 1}
    agent.save()
    run = start(sandbox / "c")
    wait_for(lambda: run_status(run, "waiting"), what="the run to pause")
    time.sleep(1.1)
    assert run_all()["expiry"]["expired"] == 1
    wait_for(lambda: run_status(run, "completed"), 5, "the expired run to finish")
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
    assert verify_chain().ok


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
    assert verify_chain().ok


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
