"""The run loop with the ledger test agent: pause, approve, edit, reject, parallel calls,
questions, stale approvals, exactly-once effects and leases."""

from __future__ import annotations

import json

from django.utils import timezone

from agents.models import Run, RunStep
from agents.runtime import drive as execute_run
from agents.runtime.loop import acquire_lease, drive
from agents.runtime.tools import call_sha256
from agents.tasks import resume_run
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_decide
from audit.events import verify_ledger
from audit.models import AuditEvent
from tests.hosted.agents import ledger_lines

TRANSFER = {"tool": "transfer", "args": {"amount": 100, "to": "acme"}}


def verbs(run) -> list[str]:
    return list(AuditEvent.objects.filter(target_id=str(run.pk)).values_list("verb", flat=True))


def test_it_pauses_at_a_call_that_needs_approval(ledger_agent, start, sandbox):
    agent = ledger_agent([[{"tool": "note", "args": {"text": "hello"}}, TRANSFER]])
    run = start(agent)

    assert run.status == Run.Status.WAITING
    cp = run.checkpoints.get()
    assert cp.status == Checkpoint.Status.PENDING
    assert cp.action == TRANSFER
    assert cp.risk == "high"
    assert cp.requester.username == "stan"
    assert cp.context["why_approval"] == ["the tool requires approval"]
    # the call that needs no approval ran in the same turn; the transfer did not
    assert [line.split(" ", 1)[1] for line in ledger_lines(sandbox / "ledger.txt")] == [
        "note hello"
    ]
    assert run.state["calls"][1]["status"] == "waiting"
    assert run.lease_owner == ""
    assert verbs(run) == ["run.started", "run.step_executed", "run.waiting"]


def test_it_executes_the_approved_action_once_and_completes(
    ledger_agent, start, inline, reviewer, sandbox
):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()

    inline(checkpoint_decide, cp.pk, reviewer, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    lines = ledger_lines(sandbox / "ledger.txt")
    assert [line.split(" ", 1)[1] for line in lines] == ["transfer 100 acme"]
    step = RunStep.objects.get(run=run)
    assert step.status == RunStep.Status.SUCCEEDED and step.checkpoint_id == cp.pk
    cp.refresh_from_db()
    executed = AuditEvent.objects.get(verb="run.step_executed", target_id=str(run.pk))
    # what ran is provably what was approved
    assert (
        executed.data["args_sha256"] == cp.final_action_sha256 == executed.data["approved_sha256"]
    )
    assert run.result["done"][0]["approved_by"] == "rita"
    assert run.result["not_done"] == []
    assert run.result["summary"] == "done: transfer=executed"
    assert verify_ledger().ok

    # a duplicated resume or execution afterwards does nothing
    assert resume_run(str(run.pk)).startswith("skipped")
    assert execute_run(run.pk) == "skipped: run is completed"
    assert len(ledger_lines(sandbox / "ledger.txt")) == 1


def test_it_executes_edited_arguments_with_their_json_types(
    ledger_agent, start, inline, reviewer, sandbox
):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()

    edited = {"tool": "transfer", "args": {"amount": 50, "to": "acme"}}
    inline(checkpoint_decide, cp.pk, reviewer, "modify", action=edited)

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert ledger_lines(sandbox / "ledger.txt")[0].endswith("transfer 50 acme")
    assert RunStep.objects.get(run=run).args == {"amount": 50, "to": "acme"}
    assert json.loads(run.state["messages"][-1]["content"])["edited_by_reviewer"] is True


def test_it_asks_again_when_an_edit_is_invalid(ledger_agent, start, inline, reviewer, sandbox):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()

    # a string where an integer belongs is not silently run
    inline(
        checkpoint_decide,
        cp.pk,
        reviewer,
        "modify",
        action={"tool": "transfer", "args": {"amount": "50", "to": "acme"}},
    )

    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    fresh = run.checkpoints.get(status=Checkpoint.Status.PENDING)
    assert fresh.action == TRANSFER  # the original proposal, asked again
    assert fresh.context["supersedes"] == str(cp.pk)
    assert "amount: expected integer, got str" in fresh.context["stale_reason"]
    assert ledger_lines(sandbox / "ledger.txt") == []
    assert not RunStep.objects.filter(run=run).exists()


def test_it_feeds_a_rejection_back_and_never_asks_the_same_call_again(
    ledger_agent, start, inline, reviewer, sandbox
):
    run = start(ledger_agent([[TRANSFER], [TRANSFER]]))
    cp = run.checkpoints.get()

    inline(checkpoint_decide, cp.pk, reviewer, "reject", comment="acme is not a customer")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert ledger_lines(sandbox / "ledger.txt") == []
    assert run.checkpoints.count() == 1  # the repeat was refused without asking anyone
    tool_messages = [m for m in run.state["messages"] if m["role"] == "tool"]
    first, second = (json.loads(m["content"]) for m in tool_messages)
    assert first == {"status": "rejected", "reason": "rejected by rita: acme is not a customer"}
    assert second["status"] == "refused"
    assert "acme is not a customer" in second["reason"]
    assert run.result["done"] == []
    assert [x["outcome"] for x in run.result["not_done"]] == ["rejected", "refused"]
    assert run.result["not_done"][0]["why"] == "rejected by rita: acme is not a customer"


def test_it_resumes_only_when_every_parallel_checkpoint_is_decided(
    ledger_agent, start, inline, reviewer, broker, sandbox
):
    second = {"tool": "transfer", "args": {"amount": 7, "to": "globex"}}
    run = start(ledger_agent([[TRANSFER, second]]))
    assert broker.calls("agents.tasks.execute_run") == [(str(run.pk),)]
    execute_run(run.pk)  # what the cluster does with it
    cp1, cp2 = run.checkpoints.order_by("created_at")
    assert {cp1.status, cp2.status} == {Checkpoint.Status.PENDING}

    inline(checkpoint_decide, cp1.pk, reviewer, "approve")
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert broker.calls("agents.tasks.resume_run") == []  # nothing to resume yet
    assert ledger_lines(sandbox / "ledger.txt") == []

    inline(checkpoint_decide, cp2.pk, reviewer, "reject", comment="not today")
    assert broker.calls("agents.tasks.resume_run") == [(str(run.pk),)]
    assert resume_run(str(run.pk)).startswith("resumed")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert [line.split(" ", 1)[1] for line in ledger_lines(sandbox / "ledger.txt")] == [
        "transfer 100 acme"
    ]
    assert run.result["summary"] == "done: transfer=executed, transfer=rejected"


def test_it_asks_a_fresh_checkpoint_when_the_approval_went_stale(
    ledger_agent, start, inline, reviewer, sandbox
):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()
    (sandbox / "ledger.closed").write_text("acme\n")  # the world changes during the wait

    inline(checkpoint_decide, cp.pk, reviewer, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    fresh = run.checkpoints.get(status=Checkpoint.Status.PENDING)
    assert fresh.context["stale_reason"] == "account acme was closed meanwhile"
    assert "a previous approval went stale" in fresh.context["why_approval"][-1]
    assert ledger_lines(sandbox / "ledger.txt") == []

    (sandbox / "ledger.closed").unlink()
    inline(checkpoint_decide, fresh.pk, reviewer, "approve")
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert len(ledger_lines(sandbox / "ledger.txt")) == 1
    assert RunStep.objects.get(run=run).key == "0.0.2"  # executed under the second approval


def test_it_finishes_an_interrupted_effect_without_repeating_it(
    ledger_agent, start, inline, reviewer, sandbox
):
    run = start(ledger_agent([[TRANSFER]]))
    cp = run.checkpoints.get()
    # Simulate a worker killed mid-effect: approved, step recorded `started`, the effect
    # written, the process gone before it recorded `succeeded`.
    inline(checkpoint_decide, cp.pk, reviewer, "approve")
    run.refresh_from_db()
    step = RunStep.objects.get(run=run)
    (sandbox / "ledger.txt").write_text(f"{step.idempotency_key} transfer 100 acme\n")
    RunStep.objects.filter(pk=step.pk).update(status=RunStep.Status.STARTED, result=None)
    state = run.state
    state["calls"] = [
        {
            **TRANSFER,
            "key": "0.0",
            "id": "call_0_0",
            "status": "ready",
            "asks": 1,
            "checkpoint": str(cp.pk),
            "planned": TRANSFER["args"],
            "approved": {"checkpoint": str(cp.pk), "by": "rita", "sha256": "", "edited": False},
        }
    ]
    state["log"], state["messages"] = [], state["messages"][:1]
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.RUNNING,
        state=state,
        result=None,
        lease_owner="dead-worker",
        lease_expires_at=timezone.now(),
    )

    assert drive(run.pk) == "completed"

    assert len(ledger_lines(sandbox / "ledger.txt")) == 1
    step.refresh_from_db()
    assert step.status == RunStep.Status.SUCCEEDED and step.attempts == 2


def test_it_leaves_a_run_alone_while_another_executor_holds_the_lease(ledger_agent, start):
    run = start(ledger_agent([[{"tool": "note", "args": {"text": "x"}}]]))
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)
    assert acquire_lease(run.pk, "someone-else")

    assert drive(run.pk) == "skipped: another executor holds the lease"


def test_it_requires_approval_when_a_rule_says_so(ledger_agent, start, sandbox):
    few = {"tool": "tag_files", "args": {"files": ["a", "b"]}}
    many = {"tool": "tag_files", "args": {"files": ["a", "b", "c"]}}
    run = start(ledger_agent([[few, many]]))

    cp = run.checkpoints.get()
    assert cp.action == many
    assert cp.risk == "high"
    assert cp.context["why_approval"] == ["more than 2 files (3)"]
    assert [line.split(" ", 1)[1] for line in ledger_lines(sandbox / "ledger.txt")] == ["tag a,b"]


def test_it_refuses_invalid_calls_before_any_checkpoint(ledger_agent, start, sandbox):
    bad = {"tool": "transfer", "args": {"amount": -5, "to": "acme"}}
    unknown = {"tool": "launch_rockets", "args": {}}
    run = start(ledger_agent([[bad, unknown]]))

    assert run.status == Run.Status.COMPLETED
    assert not run.checkpoints.exists()
    reasons = [x["why"] for x in run.result["not_done"]]
    assert reasons[0] == "amount must be positive"
    assert reasons[1].startswith("unknown tool 'launch_rockets'")


def test_it_asks_a_question_and_feeds_the_answer_back(ledger_agent, start, inline, reviewer):
    ask = {"tool": "ask_human", "args": {"question": "Which account?", "options": ["a", "b"]}}
    run = start(ledger_agent([[ask]]))
    cp = run.checkpoints.get()
    assert cp.kind == Checkpoint.Kind.QUESTION and cp.options == ["a", "b"]

    inline(checkpoint_decide, cp.pk, reviewer, "answer", answer="b")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    answer = json.loads(run.state["messages"][-1]["content"])
    assert answer == {"status": "answered", "result": {"answer": "b", "answered_by": "rita"}}
    assert run.result["answers"][0]["answer"] == "b"


def test_a_multi_line_question_asks_with_a_one_line_title(ledger_agent, start):
    question = "Which account?\r\nBcc: everyone@example.com\tnow"
    run = start(ledger_agent([[{"tool": "ask_human", "args": {"question": question}}]]))
    cp = run.checkpoints.get()
    assert cp.title == "Which account? Bcc: everyone@example.com now"
    assert cp.summary == question  # the question itself, as asked


def test_it_remembers_rejections_by_fingerprint(ledger_agent, start, inline, reviewer):
    run = start(ledger_agent([[TRANSFER]]))
    inline(checkpoint_decide, run.checkpoints.get().pk, reviewer, "reject", comment="no")
    run.refresh_from_db()
    assert call_sha256("transfer", TRANSFER["args"]) in run.state["rejected"]


def test_it_gives_the_worker_back_between_turns_of_a_long_run(
    ledger_agent, start, inline, broker, settings, sandbox
):
    settings.HITL_RUN_SLICE_SECONDS = 0
    note = {"tool": "note", "args": {"text": "a"}}
    run = start(ledger_agent([[note], [{"tool": "note", "args": {"text": "b"}}]]))

    assert inline(execute_run, run.pk) == "continued"  # one turn, then a new task
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.lease_owner == ""
    assert run.resume_attempts == 0  # yielding is not a failed attempt
    assert broker.calls("agents.tasks.execute_run") == [(str(run.pk),), (str(run.pk),)]
    assert execute_run(run.pk) == "continued"
    assert execute_run(run.pk) == "completed"
    assert len(ledger_lines(sandbox / "ledger.txt")) == 2


def test_a_failed_run_keeps_its_report_in_the_run_and_in_its_audit_event(
    ledger_agent, start, sandbox, monkeypatch
):
    """The failure and the report of what was done are one transition (run_fail), so the
    audit trail has the report too."""
    from tests.hosted.agents import LedgerAgent

    monkeypatch.setattr(LedgerAgent, "max_steps", 1)
    note = {"tool": "note", "args": {"text": "a"}}
    run = start(ledger_agent([[note], [note]]))

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and "stopped after 1 planner turns" in run.error
    assert [d["tool"] for d in run.result["done"]] == ["note"]
    event = AuditEvent.objects.get(verb="run.failed", target_id=str(run.pk))
    assert event.data["result"] == run.result
    assert event.data["error"] == run.error
    assert verify_ledger().ok
