"""Races with real threads and real connections, on PostgreSQL and on the SQLite file database.

Each round: exactly one outcome, exactly one outcome audit event, exactly one resume enqueued
(read back from the real django-q2 ORM broker queue), nothing lost.

Two kinds of rounds prove that the racing calls really meet:
- free races: both threads released by one barrier; each records when its call started and
  ended, and the test asserts that calls overlapped (the loser started before the winner was
  done) instead of merely running one after the other;
- forced interleavings (`race(..., hold=i)`): thread i pauses inside its transaction, right
  after its first statement (it holds the row or the write lock), until the other thread has
  started its own call; the other must wait for the lock and then lose to what i committed.
  Alternating i makes each side win in turn, so every outcome is exercised on every run.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection, connections

from agents.models import Run
from agents.services import Ask, ask
from agents.transitions import RESUME_TASK, run_resume, run_start
from approvals.models import Checkpoint, Decision
from approvals.transitions import checkpoint_decide, checkpoint_expire
from audit.events import Actor, verify_ledger
from audit.models import AuditEvent
from core.exceptions import Conflict

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = int(os.environ.get("HITL_RACE_ROUNDS", "100"))
OUTCOME_VERBS = {
    "checkpoint.approved",
    "checkpoint.rejected",
    "checkpoint.expired",
    "checkpoint.answered",
    "checkpoint.cancelled",
}


class Race(list):
    """The (ok|err, value) of each call, and when each call started and ended."""

    spans: list[tuple[float, float]]

    def overlapped(self) -> bool:
        """Did the calls run at the same time (each started before the other ended)?"""
        (a0, a1), (b0, b1) = self.spans
        return a0 < b1 and b0 < a1


def race(*fns: Callable[[], object], hold: int | None = None) -> Race:
    """Run two callables in threads released at the same instant. With `hold=i`, call i
    pauses inside its transaction after its first statement until the other call started."""
    barrier = threading.Barrier(len(fns))
    holding, calling = threading.Event(), threading.Event()
    results = Race([("none", None)] * len(fns))
    results.spans = [(0.0, 0.0)] * len(fns)

    def pause_once(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not holding.is_set() and connection.in_atomic_block:
            holding.set()
            calling.wait(timeout=10)
            time.sleep(0.05)  # the other call is now waiting for our lock
        return result

    def wrap(i: int, fn: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            if hold is not None and i != hold:
                holding.wait(timeout=10)
                calling.set()
            started = time.perf_counter()
            try:
                if hold == i:
                    with connection.execute_wrapper(pause_once):
                        results[i] = ("ok", fn())
                else:
                    results[i] = ("ok", fn())
            finally:
                results.spans[i] = (started, time.perf_counter())
        except Exception as exc:  # collected and asserted on by the caller
            results[i] = ("err", exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def new_checkpoint(agent, **fields) -> Checkpoint:
    actor = Actor.for_agent(agent)
    run = run_start(agent=agent, task="race", actor=actor)
    fields.setdefault("title", "race")
    fields.setdefault("action", {"tool": "delete_files", "args": {"paths": ["x"]}})
    return ask(run, [Ask(**fields)], actor=actor)[0]


def outcome_events(cp: Checkpoint) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(cp.pk), verb__in=OUTCOME_VERBS).values_list(
            "verb", flat=True
        )
    )


def assert_one_winner(results, cp: Checkpoint, broker) -> str:
    oks = [r for r in results if r[0] == "ok"]
    errs = [r[1] for r in results if r[0] == "err"]
    assert len(oks) == 1, results
    assert all(isinstance(e, Conflict) for e in errs), errs
    cp.refresh_from_db()
    assert cp.status != "pending"
    events = outcome_events(cp)
    assert events == [f"checkpoint.{cp.status}"], events
    assert broker.calls(RESUME_TASK).count((str(cp.run_id),)) == 1
    return cp.status


def test_it_has_one_outcome_when_approve_races_expiry(agent, reviewer, broker):
    seen, overlapped = Counter(), 0
    for _ in range(ROUNDS):
        cp = new_checkpoint(agent, expires_in=30)
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_expire(cp.pk, now=cp.deadline),
        )
        status = assert_one_winner(results, cp, broker)
        assert Decision.objects.filter(checkpoint=cp).count() == (status == "approved")
        seen[status] += 1
        overlapped += results.overlapped()
    assert overlapped > 0, "the calls never ran at the same time: no race was tested"
    assert verify_ledger().ok
    print(f"approve vs expire over {ROUNDS} rounds: {dict(seen)}, {overlapped} overlapped")


def test_whoever_holds_the_row_wins_approve_against_expiry_and_the_other_waits(
    agent, reviewer, broker
):
    """Forced interleavings: each side in turn is inside its transaction when the other
    arrives; the other waits, then loses with a Conflict naming the winner."""
    seen = Counter()
    for round_ in range(max(ROUNDS // 5, 4)):
        cp = new_checkpoint(agent, expires_in=30)
        holder = round_ % 2  # 0: the reviewer's decision holds the row, 1: the expiry
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_expire(cp.pk, now=cp.deadline),
            hold=holder,
        )
        assert results.overlapped(), results.spans
        status = assert_one_winner(results, cp, broker)
        assert status == ("approved" if holder == 0 else "expired")
        loser = results[1 - holder][1]
        assert loser.winner == ("expiry" if holder == 1 else reviewer.get_username())
        seen[status] += 1
    assert set(seen) == {"approved", "expired"}
    assert verify_ledger().ok


def test_it_has_one_outcome_when_two_reviewers_decide_at_once(agent, reviewer, reviewer2, broker):
    seen, overlapped = Counter(), 0
    for round_ in range(ROUNDS):
        cp = new_checkpoint(agent)
        # Every fifth round is forced, alternating who holds the row, so both outcomes occur.
        hold = (round_ // 5) % 2 if round_ % 5 == 0 else None
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer2, "reject", comment="no"),
            hold=hold,
        )
        status = assert_one_winner(results, cp, broker)
        assert Decision.objects.filter(checkpoint=cp).count() == 1
        if hold is not None:
            assert status == ("approved", "rejected")[hold]
        seen[status] += 1
        overlapped += results.overlapped()
    assert overlapped > 0, "the calls never ran at the same time: no race was tested"
    if ROUNDS > 5:
        assert set(seen) == {"approved", "rejected"}
    assert verify_ledger().ok
    print(f"two reviewers over {ROUNDS} rounds: {dict(seen)}, {overlapped} overlapped")


def test_it_records_a_double_submit_once(agent, reviewer, broker):
    overlapped = 0
    for round_ in range(ROUNDS):
        cp = new_checkpoint(agent)
        hold = (round_ // 5) % 2 if round_ % 5 == 0 else None  # every fifth round forced
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            hold=hold,
        )
        assert assert_one_winner(results, cp, broker) == "approved"
        assert Decision.objects.filter(checkpoint=cp).count() == 1
        assert (
            AuditEvent.objects.filter(target_id=str(cp.pk), verb="decision.recorded").count() == 1
        )
        if hold is not None:
            assert results.overlapped(), results.spans
            assert results[hold][0] == "ok"  # the submit holding the row is the one recorded
        overlapped += results.overlapped()
    assert overlapped > 0, "the calls never ran at the same time: no race was tested"
    assert verify_ledger().ok


def test_it_counts_concurrent_quorum_votes_both(agent, reviewer, reviewer2, broker):
    """Two approvals of a two-approval stage at the same instant: neither vote is lost."""
    from tests.factories import PolicyFactory

    PolicyFactory(stages=[{"role": "ops", "approvals": 2}])
    overlapped = 0
    for round_ in range(max(ROUNDS // 4, 10)):
        cp = new_checkpoint(agent)
        hold = round_ % 2 if round_ % 3 == 0 else None  # every third round forced
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer2, "approve"),
            hold=hold,
        )
        assert [r[0] for r in results] == ["ok", "ok"], results
        cp.refresh_from_db()
        assert cp.status == "approved"
        assert sum(r[1].resolved for r in results) == 1
        assert Decision.objects.filter(checkpoint=cp).count() == 2
        assert outcome_events(cp) == ["checkpoint.approved"]
        assert broker.calls(RESUME_TASK).count((str(cp.run_id),)) == 1
        if hold is not None:
            # the vote that waited for the row is the one that completes the quorum
            assert results.overlapped(), results.spans
            assert results[1 - hold][1].resolved
        overlapped += results.overlapped()
    assert overlapped > 0, "the calls never ran at the same time: no race was tested"


def test_it_lets_one_of_two_resumers_win(agent, reviewer, broker):
    overlapped = 0
    for round_ in range(ROUNDS):
        cp = new_checkpoint(agent)
        checkpoint_decide(cp.pk, reviewer, "approve")
        hold = round_ % 2 if round_ % 5 == 0 else None
        results = race(
            lambda cp=cp: run_resume(cp.run_id, Actor.system("resumer-a")),
            lambda cp=cp: run_resume(cp.run_id, Actor.system("resumer-b")),
            hold=hold,
        )
        overlapped += results.overlapped()
        if hold is not None:
            assert results.overlapped(), results.spans
        assert sorted(r[0] for r in results) == ["err", "ok"], results
        assert isinstance(next(r[1] for r in results if r[0] == "err"), Conflict)
        assert Run.objects.get(pk=cp.run_id).status == "running"
        assert AuditEvent.objects.filter(target_id=str(cp.run_id), verb="run.resumed").count() == 1
        assert broker.calls(RESUME_TASK).count((str(cp.run_id),)) == 1
    assert overlapped > 0, "the calls never ran at the same time: no race was tested"
    assert verify_ledger().ok


def test_it_keeps_the_audit_chain_linear_under_concurrent_appends(agent, reviewer, reviewer2):
    """Many transitions from several threads at once: no forked or duplicated sequence."""
    cps = [new_checkpoint(agent) for _ in range(40)]
    before = AuditEvent.objects.count()
    users = [reviewer, reviewer2]
    fns = [
        (
            lambda i=i: [
                checkpoint_decide(cps[j].pk, users[i % 2], "approve") for j in range(i, len(cps), 4)
            ]
        )
        for i in range(4)
    ]
    results = race(*fns)
    assert all(r[0] == "ok" for r in results), results
    # decision.recorded + checkpoint.approved + run.resumed (sync q2 runs the resume inline)
    assert AuditEvent.objects.count() == before + 40 * 3
    assert AuditEvent.objects.filter(verb="run.resumed").count() == 40
    result = verify_ledger()
    assert result.ok, result
