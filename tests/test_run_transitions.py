"""Run state machine, the resume follow-up and the reconcile sweep."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from agents.models import Run
from agents.sweeps import reconcile
from agents.transitions import (
    RESUME_TASK,
    run_cancel,
    run_complete,
    run_fail,
    run_resume,
    run_start,
    run_wait,
)
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_decide
from audit.events import Actor
from audit.models import AuditEvent
from core.exceptions import Conflict

pytestmark = pytest.mark.django_db


def run_verbs(run) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(run.pk))
        .order_by("pk")  # insert order: seqs come from the sequencer later
        .values_list("verb", flat=True)
    )


def test_it_walks_the_happy_path(agent):
    actor = Actor.for_agent(agent)
    run = run_start(agent=agent, task="t", actor=actor, input={"n": 1})
    assert run.status == "running"
    assert run_wait(run.pk, actor) is True
    assert run_wait(run.pk, actor) is False  # parallel asks: stays waiting, no event
    assert Run.objects.get(pk=run.pk).status == "waiting"
    assert run_resume(run.pk, Actor.system()).status == "running"
    done = run_complete(run.pk, actor, result={"deleted": 3})
    assert done.status == "completed" and done.result == {"deleted": 3} and done.finished_at
    assert run_verbs(run) == ["run.started", "run.waiting", "run.resumed", "run.completed"]
    completed = AuditEvent.objects.get(verb="run.completed")
    assert completed.data == {"result": {"deleted": 3}}


@pytest.mark.parametrize("finish", [run_complete, run_fail, run_cancel])
def test_it_refuses_every_move_out_of_a_finished_run(agent, finish):
    actor = Actor.for_agent(agent)
    run = run_start(agent=agent, task="t", actor=actor)
    finish(run.pk, actor)
    for move in (run_complete, run_fail, run_cancel):
        with pytest.raises(Conflict):
            move(run.pk, actor)
    with pytest.raises(Conflict):
        run_wait(run.pk, actor)
    with pytest.raises(Conflict):
        run_resume(run.pk, actor)


def test_it_refuses_to_resume_a_running_run(agent):
    run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent))
    with pytest.raises(Conflict) as exc:
        run_resume(run.pk, Actor.system())
    assert exc.value.status == "running"


def test_it_refuses_to_resume_while_a_checkpoint_is_pending(make_checkpoint, reviewer):
    first = make_checkpoint()
    make_checkpoint(run=first.run)  # a second, parallel ask on the same run
    checkpoint_decide(first.pk, reviewer, "approve")
    with pytest.raises(Conflict, match="pending"):
        run_resume(first.run_id, Actor.system())
    assert Run.objects.get(pk=first.run_id).status == "waiting"


def test_it_enqueues_the_resume_only_when_the_last_checkpoint_resolves(
    make_checkpoint, reviewer, broker, django_capture_on_commit_callbacks
):
    first = make_checkpoint()
    second = make_checkpoint(run=first.run)
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint_decide(first.pk, reviewer, "approve")
    assert broker.calls(RESUME_TASK) == []
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint_decide(second.pk, reviewer, "reject", comment="no")
    assert broker.calls(RESUME_TASK) == [(str(first.run_id),)]
    run = Run.objects.get(pk=first.run_id)
    assert run.resume_requested_at is not None and run.resume_attempts == 1


def test_it_cancels_pending_checkpoints_with_the_run(make_checkpoint, agent):
    cp = make_checkpoint()
    run_cancel(cp.run_id, Actor.for_agent(agent), reason="user gave up")
    cp.refresh_from_db()
    assert cp.status == "cancelled" and cp.resolution_reason == "run cancelled"
    run = Run.objects.get(pk=cp.run_id)
    assert run.status == "cancelled" and run.error == "user gave up"


def test_it_resumes_through_the_task(make_checkpoint, reviewer, django_capture_on_commit_callbacks):
    cp = make_checkpoint()
    with django_capture_on_commit_callbacks(execute=True):  # sync q2: the task runs inline
        checkpoint_decide(cp.pk, reviewer, "approve")
    assert Run.objects.get(pk=cp.run_id).status == "running"
    resumed = AuditEvent.objects.get(verb="run.resumed")
    assert resumed.actor_label == "resume-task"
    assert resumed.data["checkpoints"] == [[str(cp.pk), "approved"]]


def test_reconcile_re_enqueues_a_lost_resume(make_checkpoint, reviewer, broker, settings):
    settings.HITL_RECONCILE_GRACE = 60
    cp = make_checkpoint()
    # Decide without running on-commit hooks: the enqueue is "lost" (as in a crash).
    checkpoint_decide(cp.pk, reviewer, "approve")
    assert broker.calls(RESUME_TASK) == []
    assert reconcile()["resumes_enqueued"] == 0  # within the grace
    later = timezone.now() + dt.timedelta(seconds=61)
    assert reconcile(now=later)["resumes_enqueued"] == 1
    run = Run.objects.get(pk=cp.run_id)
    assert run.resume_attempts == 2


def test_reconcile_ignores_runs_with_pending_work(make_checkpoint, broker):
    make_checkpoint()
    later = timezone.now() + dt.timedelta(hours=1)
    counts = reconcile(now=later)
    assert counts["resumes_enqueued"] == 0 and counts["dead_lettered"] == 0


def test_reconcile_dead_letters_after_too_many_attempts(make_checkpoint, reviewer, settings):
    settings.HITL_MAX_RESUME_ATTEMPTS = 2
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer, "approve")
    Run.objects.filter(pk=cp.run_id).update(resume_attempts=2)
    later = timezone.now() + dt.timedelta(hours=1)
    assert reconcile(now=later)["dead_lettered"] == 1
    run = Run.objects.get(pk=cp.run_id)
    assert run.status == "failed" and "dead-lettered" in run.error
    assert AuditEvent.objects.filter(verb="run.failed", target_id=str(run.pk)).count() == 1


def test_it_keeps_a_checkpoint_pending_when_the_deadline_is_in_the_future(make_checkpoint):
    cp = make_checkpoint(expires_in=3600)
    from approvals.sweeps import expire_overdue

    assert expire_overdue()["expired"] == 0
    assert Checkpoint.objects.get(pk=cp.pk).status == "pending"
    assert expire_overdue(now=cp.deadline)["expired"] == 1
    assert Checkpoint.objects.get(pk=cp.pk).status == "expired"


def test_a_one_question_run_completes_when_its_checkpoint_expires_in_a_batch(
    agent, broker, django_capture_on_commit_callbacks
):
    import datetime as dt

    from django.utils import timezone

    from agents.services import Ask, ask
    from approvals.sweeps import expire_overdue

    actor = Actor.for_agent(agent)
    one_shot = run_start(agent=agent, task="q", actor=actor, complete_when_resolved=True)
    normal = run_start(agent=agent, task="q", actor=actor)
    for run in (one_shot, normal):
        ask(run, [Ask(title="t", action={"tool": "t"})], actor=actor)
    with django_capture_on_commit_callbacks(execute=True):
        expire_overdue(now=timezone.now() + dt.timedelta(days=1))
    one_shot.refresh_from_db()
    normal.refresh_from_db()
    assert one_shot.status == "completed" and one_shot.result["status"] == "expired"
    assert normal.status == "waiting"  # its agent resumes it
    assert broker.calls("agents.tasks.resume_run") == [(str(normal.pk),)]
