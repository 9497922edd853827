"""`manage.py verify_audit` the way operators cron it, on a busy portal: a writer creates
checkpoints through the transitions at a steady rate, the real `manage.py sequencer` process
sequences them and signs heads, and every verification run in between finds the log intact
(exit 0), while a real tampering is still reported (exit 2). Both databases.

A verifier that read the heads and then the events in two snapshots saw events the
sequencer had just signed under a head it had not read, and reported them as "not covered by
any signed head": tampering, on every busy portal (issue 18 §5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection, connections

from agents.models import Agent
from audit.models import AuditEvent
from core.models import TreeHead
from tests.api import live
from tests.ledger.test_sequencer import start_sequencer, wait_for
from tests.test_races import ROUNDS, new_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
RUNS = max(ROUNDS // 10, 4)  # verify_audit runs while the portal is busy


class Writer(threading.Thread):
    """Creates a checkpoint (a run started, the agent asks) every `every` seconds through the
    transitions, on its own connection, until stopped."""

    def __init__(self, agent: Agent, every: float) -> None:
        super().__init__(daemon=True)
        self.agent, self.every = agent, every
        self.stop = threading.Event()
        self.created = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.wait(self.every):
                new_checkpoint(self.agent)
                self.created += 1
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connections.close_all()


def verify_audit(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "verify_audit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def heads() -> int:
    return TreeHead.objects.count()


class Busy:
    """The writer and the real sequencer process, running."""

    def __init__(self, env: dict, writer: Writer) -> None:
        self.env, self.writer = env, writer

    def during(self, run):
        """`run()` while the portal is busy: assert that it was (new checkpoints and newly
        signed heads during it)."""
        before = (self.writer.created, heads())
        result = run()
        assert self.writer.error is None, self.writer.error
        assert self.writer.created > before[0] and heads() > before[1]
        return result


@pytest.fixture
def busy(agent, settings):
    settings.HITL_LEDGER_SYNC = False  # the sequencer process sequences, not the writer
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": live.test_database_url(),
        "HITL_Q_SYNC": "0",
        "HITL_LEDGER_SIGNING_KEY": settings.HITL_LEDGER_SIGNING_KEY,
        "LOG_LEVEL": "WARNING",
    }
    writer = Writer(agent, every=0.05)
    sequencer = start_sequencer(env)
    try:
        writer.start()
        assert wait_for(lambda: heads() >= 3), "the sequencer signs no heads"
        yield Busy(env, writer)
    finally:
        writer.stop.set()
        writer.join(timeout=30)
        sequencer.terminate()
        sequencer.wait(timeout=30)
    assert writer.created >= RUNS


def tamper() -> AuditEvent:
    """Someone changes what a logged event says (raw SQL); writes go on."""
    victim = AuditEvent.objects.filter(seq__isnull=False).order_by("seq")[5]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE approvals_auditevent SET data = %s WHERE id = %s",
            ['{"tampered": true}', victim.pk],
        )
    return victim


def test_verify_audit_finds_a_busy_log_intact_and_still_catches_tampering(busy):
    runs = [busy.during(lambda: verify_audit(busy.env)) for _ in range(RUNS)]
    failed = [(r.returncode, r.stdout + r.stderr) for r in runs if r.returncode != 0]
    assert failed == [], f"{len(failed)} of {RUNS} runs reported a broken ledger: {failed[:3]}"
    assert all(r.stdout.startswith("ledger OK: ") for r in runs)

    victim = tamper()
    tampered = verify_audit(busy.env)
    assert tampered.returncode == 2, tampered.stdout + tampered.stderr
    assert f"ledger BROKEN at event #{victim.seq}" in tampered.stderr
    assert "does not match its leaf hash (changed)" in tampered.stderr


def test_hitl_verify_full_finds_a_busy_log_intact_and_still_catches_tampering(
    busy, live_portal, manager, tmp_path
):
    """`hitl verify --full` from cron against the API (heads, consistency proofs from the
    head kept in its state file, every entry), while the portal is busy."""
    from approvals.services import user_token_create
    from tests.client.test_cli import hitl

    auditor = user_token_create(manager)
    state = tmp_path / "witness.json"
    runs = [
        busy.during(lambda: hitl(live_portal, auditor, "verify", "--state", str(state), "--full"))
        for _ in range(RUNS)
    ]
    failed = [(r.returncode, r.stdout + r.stderr) for r in runs if r.returncode != 0]
    assert failed == [], f"{len(failed)} of {RUNS} runs reported a broken ledger: {failed[:3]}"
    reports = [json.loads(r.stdout) for r in runs]
    sizes = [r["head"]["tree_size"] for r in reports]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # each run proved it extends the last
    assert all(r["entries_checked"] == r["head"]["tree_size"] for r in reports)

    victim = tamper()
    tampered = hitl(live_portal, auditor, "verify", "--state", str(state), "--full")
    assert tampered.returncode == 7, tampered.stdout + tampered.stderr
    assert f"event #{victim.seq} does not match its leaf hash (changed)" in tampered.stdout
