"""The sequencer: committed events only, in one order, no gap, no duplicate — with writers
and several sequencers at once (threads, real connections, both databases) — and a killed
sequencer process is resumed by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connections

from agents.models import Agent
from audit import events as audit
from audit.events import Actor, AuditVerb, verify_ledger
from audit.models import AuditEvent
from core.ledger import heads, sequencer
from core.ledger.verify import public_keys
from core.models import TreeHead
from tests.api import live

ROOT = Path(__file__).resolve().parents[2]
ACTOR = Actor.system("test")


def record(agent: Agent, n: int, *, fail: bool = False) -> None:
    with audit.atomic():
        audit.record_many(
            [(ACTOR, AuditVerb.AGENT_KEY_CREATED, agent, {"name": f"k{i}"}) for i in range(n)]
        )
        if fail:
            raise RuntimeError("rolled back")


def seqs() -> list[int]:
    return list(
        AuditEvent.objects.filter(seq__isnull=False).order_by("seq").values_list("seq", flat=True)
    )


@pytest.mark.django_db
def test_it_sequences_in_insert_order_and_signs_each_batch(agent, settings):
    settings.HITL_LEDGER_SYNC = False
    record(agent, 3)
    assert seqs() == []  # unsequenced: no lock, no hash in the writer's transaction
    batch = sequencer.run_batch(limit=2)
    assert (batch.sequenced, batch.head.tree_size) == (2, 2)
    assert sequencer.sequence_pending() == 1
    events = list(AuditEvent.objects.order_by("pk"))
    assert [e.seq for e in events] == [1, 2, 3]
    assert [h.tree_size for h in TreeHead.objects.order_by("tree_size")] == [2, 3]
    for head in TreeHead.objects.all():
        assert heads.check(heads.as_json(head), public_keys()) == ""
    result = verify_ledger()
    assert result.ok and result.checked == 3 and result.pending == 0


@pytest.mark.django_db(transaction=True)
def test_writers_and_sequencers_at_once_leave_no_gap_no_duplicate_and_no_rolled_back_event(
    settings,
):
    settings.HITL_LEDGER_SYNC = False  # as in production: nobody sequences on commit
    agent = Agent.objects.create(slug="bot", name="Bot")
    writers, per_writer, stop = 4, 15, threading.Event()
    errors: list[BaseException] = []
    batches: list[int] = []

    def write(w: int) -> None:
        try:
            for i in range(per_writer):
                try:
                    record(agent, 1 + (i % 3), fail=(i % 5 == 4))
                except RuntimeError:
                    pass
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    def sequence() -> None:
        try:
            while not stop.is_set():
                batch = sequencer.run_batch(limit=7)
                if batch is not None and batch.sequenced:
                    batches.append(batch.sequenced)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    seqs_threads = [threading.Thread(target=sequence) for _ in range(2)]
    for t in seqs_threads + threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    for t in seqs_threads:
        t.join(timeout=60)
    assert errors == []
    sequencer.sequence_pending()
    committed = writers * sum(1 + (i % 3) for i in range(per_writer) if i % 5 != 4)
    assert AuditEvent.objects.count() == committed  # rolled-back events never existed
    assert seqs() == list(range(1, committed + 1))  # no gap, no duplicate
    assert sum(batches) > 0  # the concurrent sequencers did real work
    sizes = list(TreeHead.objects.order_by("created_at", "pk").values_list("tree_size", flat=True))
    assert sizes == sorted(sizes) and sizes[-1] == committed
    assert verify_ledger().ok


def start_sequencer(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "sequencer"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(predicate, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_sequencer_is_resumed_by_the_next(settings):
    settings.HITL_LEDGER_SYNC = False
    agent = Agent.objects.create(slug="bot", name="Bot")
    for _ in range(12):
        record(agent, 500)
    total = AuditEvent.objects.count()
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": live.test_database_url(),
        "HITL_Q_SYNC": "0",
        "HITL_LEDGER_BATCH": "100",
        "HITL_LEDGER_SIGNING_KEY": settings.HITL_LEDGER_SIGNING_KEY,
        "LOG_LEVEL": "WARNING",
    }
    first = start_sequencer(env)
    try:
        assert wait_for(lambda: TreeHead.objects.exists()), "the sequencer never started"
        first.send_signal(signal.SIGKILL)  # mid-run: no clean shutdown
        first.wait(10)
        done_before = TreeHead.objects.order_by("-tree_size").values_list("tree_size", flat=True)[0]
        assert done_before < total
        second = start_sequencer(env)
        try:
            assert wait_for(lambda: not AuditEvent.objects.filter(seq__isnull=True).exists())
            assert wait_for(lambda: TreeHead.objects.filter(tree_size=total).exists())
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(15) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert seqs() == list(range(1, total + 1))
    result = verify_ledger()
    assert result.ok and result.checked == total
