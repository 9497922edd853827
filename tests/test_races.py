"""Races with real threads and real connections, on PostgreSQL and on the SQLite file database.

Each round: exactly one outcome, exactly one outcome audit event, exactly one resume enqueued
(read back from the real django-q2 ORM broker queue), nothing lost.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connections

from agents.models import Run
from agents.services import request_checkpoint
from agents.transitions import RESUME_TASK, run_resume, run_start
from approvals.audit import Actor, verify_chain
from approvals.exceptions import Conflict
from approvals.models import AuditEvent, Checkpoint, Decision
from approvals.transitions import checkpoint_decide, checkpoint_expire

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = int(os.environ.get("HITL_RACE_ROUNDS", "100"))
OUTCOME_VERBS = {
    "checkpoint.approved",
    "checkpoint.rejected",
    "checkpoint.expired",
    "checkpoint.answered",
    "checkpoint.cancelled",
}


def race(*fns: Callable[[], object]) -> list[tuple[str, object]]:
    """Run the callables in threads released at the same instant; return (ok|err, value)."""
    barrier = threading.Barrier(len(fns))
    results: list[tuple[str, object]] = [("none", None)] * len(fns)

    def wrap(i: int, fn: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = ("ok", fn())
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
    return request_checkpoint(run, actor, **fields)


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
    seen = Counter()
    for _ in range(ROUNDS):
        cp = new_checkpoint(agent, expires_in=30)
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_expire(cp.pk, now=cp.deadline),
        )
        status = assert_one_winner(results, cp, broker)
        assert Decision.objects.filter(checkpoint=cp).count() == (status == "approved")
        seen[status] += 1
    assert sum(seen.values()) == ROUNDS
    assert verify_chain().ok
    print(f"approve vs expire over {ROUNDS} rounds: {dict(seen)}")


def test_it_has_one_outcome_when_two_reviewers_decide_at_once(agent, reviewer, reviewer2, broker):
    seen = Counter()
    for _ in range(ROUNDS):
        cp = new_checkpoint(agent)
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer2, "reject", comment="no"),
        )
        status = assert_one_winner(results, cp, broker)
        assert Decision.objects.filter(checkpoint=cp).count() == 1
        seen[status] += 1
    assert verify_chain().ok
    print(f"two reviewers over {ROUNDS} rounds: {dict(seen)}")


def test_it_records_a_double_submit_once(agent, reviewer, broker):
    for _ in range(ROUNDS):
        cp = new_checkpoint(agent)
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
        )
        assert assert_one_winner(results, cp, broker) == "approved"
        assert Decision.objects.filter(checkpoint=cp).count() == 1
        assert (
            AuditEvent.objects.filter(target_id=str(cp.pk), verb="decision.recorded").count() == 1
        )
    assert verify_chain().ok


def test_it_counts_concurrent_quorum_votes_both(agent, reviewer, reviewer2, broker):
    """Two approvals of a two-approval stage at the same instant: neither vote is lost."""
    from tests.factories import PolicyFactory

    PolicyFactory(stages=[{"role": "ops", "approvals": 2}])
    for _ in range(max(ROUNDS // 4, 10)):
        cp = new_checkpoint(agent)
        results = race(
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer, "approve"),
            lambda cp=cp: checkpoint_decide(cp.pk, reviewer2, "approve"),
        )
        assert [r[0] for r in results] == ["ok", "ok"], results
        cp.refresh_from_db()
        assert cp.status == "approved"
        assert sum(r[1].resolved for r in results) == 1
        assert outcome_events(cp) == ["checkpoint.approved"]
        assert broker.calls(RESUME_TASK).count((str(cp.run_id),)) == 1


def test_it_lets_one_of_two_resumers_win(agent, reviewer, broker):
    for _ in range(ROUNDS):
        cp = new_checkpoint(agent)
        checkpoint_decide(cp.pk, reviewer, "approve")
        results = race(
            lambda cp=cp: run_resume(cp.run_id, Actor.system("resumer-a")),
            lambda cp=cp: run_resume(cp.run_id, Actor.system("resumer-b")),
        )
        assert sorted(r[0] for r in results) == ["err", "ok"], results
        assert isinstance(next(r[1] for r in results if r[0] == "err"), Conflict)
        assert Run.objects.get(pk=cp.run_id).status == "running"
        assert AuditEvent.objects.filter(target_id=str(cp.run_id), verb="run.resumed").count() == 1
        assert broker.calls(RESUME_TASK).count((str(cp.run_id),)) == 1
    assert verify_chain().ok


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
    result = verify_chain()
    assert result.ok, result
