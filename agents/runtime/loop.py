"""The hosted run loop. One function, `drive(run_id)`, serves the start task, the resume task
and the reconcile sweep: it continues a running run from its saved state until the run
waits for a human, finishes, or yields its time slice. It never waits for a human.

State (`Run.state`, JSON) is the whole truth between executions:
    step      planner turns taken
    messages  the transcript in chat-completions form (assistant tool calls, tool results)
    calls     the current turn's tool calls, each new → waiting → ready → done
    log       every finished call with its outcome, for the planner and the final report
    rejected  sha256 of calls a reviewer rejected, with the reason (never asked again as is)

Safety:
- Lease: only the executor holding `Run.lease_owner` may save state ("fenced" updates check
  it); a heartbeat renews it while a tool or the planner works. A dead executor's lease
  lapses and the reconcile sweep re-enqueues the run.
- Exactly-once effects: each execution is a `RunStep` row written before the effect
  (`started`) and after it (`succeeded`/`failed`), keyed by the call's position. A redelivered
  task finds `succeeded` and reuses the result; a step left `started` was interrupted mid-
  effect and is finished by the tool's own idempotency check (same key, `recovering=True`).
- Re-validation: an approved call is checked against the world before it runs; if it no
  longer holds, a fresh checkpoint is asked (the tool's `refresh` hook recomputes it).
- Kill switch: before every planner turn and every effect the executor checks that its agent
  is not halted; halting cancels the run in the same transaction, so the fenced write that
  records an effect before it starts fails too. Nothing starts after a halt.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from agents.models import Agent, Run, RunEvent, RunStep
from agents.runtime.agent import AgentNotRunnable, HostedAgent, ask_human, load_agent
from agents.runtime.lease import LeaseLost, acquire_lease, expiry, heartbeat
from agents.runtime.planners import Plan, PlannerError, PlanView
from agents.runtime.report import build_report
from agents.runtime.rules import requirement
from agents.runtime.tools import Preview, StaleAction, Tool, ToolContext, ToolError, call_sha256
from agents.services import Ask, ask, refuse_if_halted
from agents.transitions import run_complete, run_fail, run_request_execute, run_wait
from approvals.models import RISK_ORDER, Checkpoint
from approvals.receipts import (
    ReceiptNotReady,
    ReceiptRefused,
    await_sealed,
    receipt_redeem,
    receipt_token,
)
from audit import events as audit
from audit.events import Actor, AuditVerb
from core.exceptions import Halted
from core.text import one_line

log = logging.getLogger(__name__)

MAX_ASKS = 3  # fresh checkpoints for one call after stale approvals, before giving up
MAX_STEP_ATTEMPTS = 3  # interrupted executions of one effect before it is marked failed
# Characters of a tool result that go into the transcript (what an LLM reads) and the
# timeline; the script, the log and the report keep the whole result.
RESULT_LIMIT = 20_000

CP = Checkpoint.Status


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _compact(value: Any) -> Any:
    text = json.dumps(value, default=str)
    if len(text) <= RESULT_LIMIT:
        return value
    return {"truncated": True, "preview": text[:RESULT_LIMIT]}


@dataclass
class _Ask:
    call: dict
    preview: Preview
    risk: str
    reasons: list[str]
    context: dict = field(default_factory=dict)
    kind: str = Checkpoint.Kind.APPROVAL
    options: list = field(default_factory=list)


def drive(run_id) -> str:
    """Continue a running hosted run. Returns what happened, for the task result."""
    owner = uuid.uuid4().hex
    if not acquire_lease(run_id, owner):
        status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
        if status is None:
            return "skipped: no such run"
        if status != Run.Status.RUNNING:
            return f"skipped: run is {status}"
        return "skipped: another executor holds the lease"
    run = Run.objects.select_related("agent", "created_by").get(pk=run_id)
    execution = Execution(run, owner)
    try:
        return execution.go()
    except Halted:  # the kill switch, seen at a step boundary (or by `ask`)
        log.warning("run %s: its agent was halted; stopped at a step boundary", run_id)
        return "stopped: agent halted"
    except LeaseLost:
        if Agent.objects.filter(pk=run.agent_id, halted_at__isnull=False).exists():
            return "stopped: agent halted"
        log.warning("run %s: lease lost; another executor continues", run_id)
        return "stopped: lease lost"
    except ReceiptNotReady as exc:
        log.warning("run %s: %s; trying again", run_id, exc)
        return execution.defer(str(exc))
    except DatabaseError:
        # Transient (locked, connection dropped): leave the run running; once the lease
        # lapses the reconcile sweep re-enqueues it, counting attempts.
        log.exception("run %s: database error; reconcile will retry", run_id)
        raise
    except Exception as exc:
        log.exception("run %s: internal error", run_id)
        return execution.fail(f"internal error: {type(exc).__name__}: {exc}")


class Execution:
    def __init__(self, run: Run, owner: str):
        self.run = run
        self.owner = owner
        self.actor = Actor.for_agent(run.agent)
        self.started = time.monotonic()
        self.state: dict[str, Any] = {
            "step": 0,
            "messages": [],
            "calls": [],
            "log": [],
            "rejected": {},
            **(run.state or {}),
        }
        self.agent: HostedAgent | None = None
        self.turns = 0

    # --- the loop -----------------------------------------------------------------------------

    def go(self) -> str:
        try:
            self.agent = load_agent(self.run.agent)
            planner = self.agent.planner()
        except (AgentNotRunnable, PlannerError) as exc:
            return self.fail(str(exc))
        while True:
            if self.state["calls"]:
                if self._work_on_calls() == "waiting":
                    return "waiting"
                continue
            if self.state["step"] >= self.agent.max_steps:
                return self.fail(f"stopped after {self.agent.max_steps} planner turns")
            if self.turns and time.monotonic() - self.started > settings.HITL_RUN_SLICE_SECONDS:
                return self._yield_slice()  # at least one turn per slice, so it progresses
            self._check_not_halted()
            try:
                with heartbeat(self.run.pk, self.owner):
                    plan = planner.plan(self._view())
            except PlannerError as exc:
                return self.fail(f"planner: {exc}")
            if plan.final is not None or not plan.calls:
                return self._complete(plan.final or "")
            self._start_turn(plan)
            self.turns += 1

    def _view(self) -> PlanView:
        return PlanView(
            task=self.run.task,
            input=self.run.input,
            step=self.state["step"],
            messages=self.state["messages"],
            tools=self.agent.all_tools(),
            results=self.state["log"],
            system_prompt=self.agent.config.get("system_prompt") or self.agent.system_prompt,
        )

    def _start_turn(self, plan: Plan) -> None:
        step = self.state["step"]
        calls = []
        for i, c in enumerate(plan.calls):
            calls.append(
                {
                    "key": f"{step}.{i}",
                    "id": c.id or f"call_{step}_{i}",
                    "tool": c.name,
                    "args": c.args if isinstance(c.args, dict) else {},
                    "planned": c.args if isinstance(c.args, dict) else {},
                    "error": c.error or ("" if isinstance(c.args, dict) else "arguments missing"),
                    "status": "new",
                    "asks": 0,
                    "checkpoint": None,
                    "thought": plan.thought,
                    "confidence": c.confidence,
                }
            )
        self.state["messages"].append(
            {
                "role": "assistant",
                "content": plan.thought or None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["tool"], "arguments": json.dumps(c["args"])},
                    }
                    for c in calls
                ],
            }
        )
        self.state["calls"] = calls
        self.state["step"] = step + 1
        self._event(
            RunEvent.Kind.STEP,
            f"step {step + 1}: " + ", ".join(c["tool"] for c in calls),
            {"thought": plan.thought, "calls": [[c["tool"], c["args"]] for c in calls]},
        )
        self._save()

    def _work_on_calls(self) -> str:
        asks: list[_Ask] = []
        for call in self.state["calls"]:
            if call["status"] == "new":
                self._prepare(call, asks)
            elif call["status"] == "waiting":
                self._collect_decision(call, asks)
            if call["status"] == "ready":
                self._execute(call, asks)
            self._save()
        if asks:
            self._ask(asks)
            return "waiting"
        if any(c["status"] == "waiting" for c in self.state["calls"]):
            self._wait_again()
            return "waiting"
        self._close_turn()
        return "next"

    # --- one call -----------------------------------------------------------------------------

    def _ctx(self, key: str = "", recovering: bool = False) -> ToolContext:
        return ToolContext(
            run=self.run,
            agent=self.run.agent,
            config=self.agent.config,
            idempotency_key=f"{self.run.pk}:{key}" if key else "",
            recovering=recovering,
        )

    def _done(self, call: dict, outcome: str, *, result: Any = None, reason: str = "") -> None:
        call["status"] = "done"
        call["outcome"] = outcome
        if result is not None:
            call["result"] = _jsonable(result)
        if reason:
            call["reason"] = reason
        kind = (
            RunEvent.Kind.OBSERVATION
            if outcome in ("executed", "answered")
            else RunEvent.Kind.ERROR
        )
        self._event(
            kind,
            f"{call['tool']}: {outcome}" + (f" ({reason})" if reason else ""),
            {"key": call["key"], "result": _compact(call.get("result"))},
        )

    def _prepare(self, call: dict, asks: list[_Ask]) -> None:
        tool = self.agent.get_tool(call["tool"])
        if call.get("error"):
            return self._done(call, "failed", reason=call["error"])
        if tool is None:
            names = ", ".join(t.name for t in self.agent.all_tools())
            return self._done(
                call, "failed", reason=f"unknown tool {call['tool']!r} (have: {names})"
            )
        ctx = self._ctx()
        try:
            tool.validate(call["args"], ctx)
        except ToolError as exc:
            # Refused before any checkpoint: nobody is asked to approve an impossible call.
            return self._done(call, "refused", reason=str(exc))
        sha = call_sha256(tool.name, call["args"])
        if sha in self.state["rejected"]:
            return self._done(
                call,
                "refused",
                reason="this exact call was rejected before ("
                + self.state["rejected"][sha]
                + "); propose something different or finish",
            )
        if tool is ask_human:
            question = call["args"]["question"]
            call["asks"] = 1
            asks.append(
                _Ask(
                    call,
                    Preview(title=question[:300], summary=question),
                    tool.risk,
                    [],
                    kind=Checkpoint.Kind.QUESTION,
                    options=call["args"].get("options") or [],
                )
            )
            return None
        need = requirement(tool, call["args"], self.agent.all_rules())
        if not need.needed:
            call["status"] = "ready"
            return None
        try:
            preview = tool.make_preview(call["args"], ctx)
        except ToolError as exc:
            return self._done(call, "refused", reason=str(exc))
        call["asks"] = 1
        asks.append(_Ask(call, preview, _max_risk(need.risk, preview.risk), need.reasons))
        return None

    def _collect_decision(self, call: dict, asks: list[_Ask]) -> None:
        cp = Checkpoint.with_drills.select_related("resolved_by").get(pk=call["checkpoint"])
        if cp.status == CP.PENDING:
            return
        who = _decider(cp)
        if cp.status == CP.APPROVED:
            final = cp.final_action or cp.action
            call["approved"] = {
                "checkpoint": str(cp.pk),
                "by": who,
                "sha256": cp.final_action_sha256,
                "edited": final != cp.action,
            }
            call["args"] = final.get("args", {})
            call["status"] = "ready"
        elif cp.status == CP.ANSWERED:
            self._done(call, "answered", result={"answer": cp.answer, "answered_by": who})
        else:
            reason = cp.resolution_reason or cp.status
            label = {
                CP.REJECTED: f"rejected by {who}",
                CP.EXPIRED: "expired",
                CP.CANCELLED: "cancelled",
            }.get(cp.status, cp.status)
            # Remember both what the planner asked and what was proposed: neither is asked
            # again unchanged.
            for args in (call.get("planned") or {}, cp.action.get("args", {})):
                self.state["rejected"][call_sha256(call["tool"], args)] = f"{label}: {reason}"
            self._done(call, "rejected", reason=f"{label}: {reason}")

    def _execute(self, call: dict, asks: list[_Ask]) -> None:
        tool = self.agent.get_tool(call["tool"])
        key = f"{call['key']}.{call['asks']}"
        step = RunStep.objects.filter(run=self.run, key=key).first()
        if step is not None and step.status == RunStep.Status.SUCCEEDED:
            return self._done(call, "executed", result=step.result)  # redelivered: no repeat
        if step is not None and step.status == RunStep.Status.FAILED:
            return self._done(call, "failed", reason=step.error)
        approved = call.get("approved")
        args = call["args"]
        if step is None:
            ctx = self._ctx(key)
            try:
                tool.validate(args, ctx)
            except ToolError as exc:
                if approved:
                    return self._reask(
                        call,
                        tool,
                        f"the approved action is invalid: {exc}",
                        call.get("proposed") or args,
                        asks,
                    )
                return self._done(call, "refused", reason=str(exc))
            try:
                tool.check_current(args, ctx)
            except StaleAction as exc:
                if approved:
                    return self._reask(call, tool, str(exc), args, asks)
                return self._done(call, "failed", reason=str(exc))
            except ToolError as exc:
                return self._done(call, "failed", reason=str(exc))
            self._check_not_halted()
            # The receipt, right before the effect: the exact action that was approved, once.
            token = self._receipt(approved["checkpoint"]) if approved else None
            try:
                with self._fenced():
                    if token is not None:
                        receipt_redeem(
                            token,
                            {"tool": tool.name, "args": args},
                            self.actor,
                            redeemer=f"run:{self.run.pk}:{key}",
                        )
                    step = RunStep.objects.create(
                        run=self.run,
                        key=key,
                        tool=tool.name,
                        args=args,
                        args_sha256=call_sha256(tool.name, args),
                        checkpoint_id=approved["checkpoint"] if approved else None,
                    )
            except ReceiptRefused as exc:
                if getattr(exc, "code", "") in ("receipt_expired", "action_mismatch"):
                    return self._reask(call, tool, f"receipt refused: {exc}", args, asks)
                return self._done(call, "failed", reason=f"receipt refused: {exc}")
        else:
            step.attempts += 1
            if step.attempts > MAX_STEP_ATTEMPTS:
                self._finish_step(step, error=f"interrupted {step.attempts - 1} times; giving up")
                return self._done(call, "failed", reason=step.error)
            self._check_not_halted()
            with self._fenced():
                RunStep.objects.filter(pk=step.pk).update(attempts=step.attempts)
            ctx = self._ctx(key, recovering=True)
            self._event(
                RunEvent.Kind.LOG,
                f"{tool.name}: finishing an interrupted execution",
                {"key": key, "attempt": step.attempts},
            )
        try:
            with heartbeat(self.run.pk, self.owner):
                result = _jsonable(tool.call(args, ctx))
        except StaleAction as exc:
            # The tool found the world changed and undid its work (e.g. a rolled-back UPDATE).
            self._finish_step(step, error=f"stale: {exc}")
            if approved:
                return self._reask(call, tool, str(exc), args, asks)
            return self._done(call, "failed", reason=str(exc))
        except ToolError as exc:
            self._finish_step(step, error=str(exc))
            return self._done(call, "failed", reason=str(exc))
        except Exception as exc:  # a bug in a tool must not kill the run: report it
            log.exception("run %s: tool %s raised", self.run.pk, tool.name)
            self._finish_step(step, error=f"{type(exc).__name__}: {exc}")
            return self._done(call, "failed", reason=step.error)
        self._finish_step(step, result=result, approved=approved)
        return self._done(call, "executed", result=result)

    def _finish_step(
        self, step: RunStep, *, result: Any = None, error: str = "", approved: dict | None = None
    ) -> None:
        step.status = RunStep.Status.FAILED if error else RunStep.Status.SUCCEEDED
        step.error = error
        step.result = result
        with self._fenced():
            RunStep.objects.filter(pk=step.pk).update(
                status=step.status, result=result, error=error, finished_at=timezone.now()
            )
            audit.record(
                self.actor,
                AuditVerb.RUN_STEP_FAILED if error else AuditVerb.RUN_STEP_EXECUTED,
                self.run,
                {
                    "key": step.key,
                    "tool": step.tool,
                    "args_sha256": step.args_sha256,
                    "checkpoint": str(step.checkpoint_id) if step.checkpoint_id else None,
                    "approved_sha256": (approved or {}).get("sha256"),
                    "error": error,
                },
            )

    def _reask(
        self, call: dict, tool: Tool, reason: str, base_args: dict, asks: list[_Ask]
    ) -> None:
        previous = call.get("checkpoint")
        self._event(
            RunEvent.Kind.LOG,
            f"{tool.name}: approval is stale, asking again ({reason})",
            {"checkpoint": previous},
        )
        if call["asks"] >= MAX_ASKS:
            return self._done(
                call, "failed", reason=f"gave up after {call['asks']} stale approvals: {reason}"
            )
        ctx = self._ctx()
        try:
            args = tool.refresh_fn(base_args, ctx) if tool.refresh_fn else base_args
            tool.validate(args, ctx)
            preview = tool.make_preview(args, ctx)
        except ToolError as exc:
            return self._done(
                call, "failed", reason=f"{reason}; no fresh proposal could be made: {exc}"
            )
        call["args"] = args
        call.pop("approved", None)
        call["asks"] += 1
        need = requirement(tool, args, self.agent.all_rules())
        asks.append(
            _Ask(
                call,
                preview,
                _max_risk(need.risk, preview.risk),
                [*need.reasons, f"a previous approval went stale: {reason}"],
                context={"supersedes": previous, "stale_reason": reason},
            )
        )
        return None

    # --- asking, waiting, finishing ---------------------------------------------------------

    def _ask(self, asks: list[_Ask]) -> None:
        """All of a turn's checkpoints, the saved state and `waiting`: one transaction."""
        for item in asks:
            args = item.preview.args if item.preview.args is not None else item.call["args"]
            item.call["args"] = args
            item.call["proposed"] = args

        def record(checkpoints: list[Checkpoint]) -> None:
            for item, cp in zip(asks, checkpoints, strict=True):
                call = item.call
                call["checkpoint"] = str(cp.pk)
                call["status"] = "waiting"
                self._event(
                    RunEvent.Kind.TOOL_CALL,
                    f"{call['tool']}: asked for approval",
                    {"checkpoint": str(cp.pk), "key": call["key"]},
                )
            self._release(state=True)

        ask(
            self.run,
            [
                Ask(
                    kind=item.kind,
                    # Tools and planners write titles from any text (a question, a commit
                    # message): the checkpoint's is one line, as every edge requires.
                    title=one_line(item.preview.title, 300),
                    summary=item.preview.summary,
                    action={"tool": item.call["tool"], "args": item.call["args"]},
                    context={
                        "request": self.run.task,
                        "input": self.run.input,
                        "reasoning": item.call.get("thought") or "",
                        "why_approval": item.reasons,
                        "step": self.state["step"],
                        "call": item.call["key"],
                        **item.context,
                    },
                    risk=item.risk,
                    options=item.options,
                    expires_in=self.agent.approval_timeout(),
                    requester=self.run.created_by,
                    idempotency_key=f"run:{self.run.pk}:{item.call['key']}:{item.call['asks']}",
                    artifacts=item.preview.artifacts,
                    confidence=_confidence(item.preview.confidence, item.call.get("confidence")),
                )
                for item in asks
            ],
            actor=self.actor,
            before_wait=record,
        )

    def _wait_again(self) -> None:
        with audit.atomic():
            self._release(state=True)
            run_wait(self.run.pk, self.actor)

    def _close_turn(self) -> None:
        for call in self.state["calls"]:
            outcome = {"status": call["outcome"]}
            if "result" in call:
                outcome["result"] = _compact(call["result"])
            if call.get("reason"):
                outcome["reason"] = call["reason"]
            if call.get("approved"):
                outcome["approved_by"] = call["approved"]["by"]
                outcome["edited_by_reviewer"] = call["approved"]["edited"]
            self.state["messages"].append(
                {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(outcome)}
            )
            self.state["log"].append(
                {
                    "key": call["key"],
                    "tool": call["tool"],
                    "args": call["args"],
                    "outcome": call["outcome"],
                    "result": call.get("result"),
                    "reason": call.get("reason", ""),
                    "checkpoint": call.get("checkpoint"),
                    "approved_by": (call.get("approved") or {}).get("by"),
                }
            )
        self.state["calls"] = []
        self._save()

    def report(self, summary: str) -> dict:
        return build_report(self.state, summary)

    def _complete(self, summary: str) -> str:
        with audit.atomic():
            self._release(state=True)
            run_complete(self.run.pk, self.actor, result=self.report(summary))
        return "completed"

    def fail(self, error: str) -> str:
        """Fail the run (if we still hold it), keeping the report of what was done."""
        try:
            with audit.atomic():
                self._release(state=True)
                run_fail(self.run.pk, self.actor, error=error[:2000], result=self.report(error))
                self._event(RunEvent.Kind.ERROR, error[:500])
        except LeaseLost:
            return "stopped: lease lost"
        return "failed"

    def _yield_slice(self) -> str:
        """Long runs give the worker back between turns and continue in a new task."""
        with audit.atomic():
            self._release(state=True)
            # Not a failure: the next slice does not count towards dead-lettering.
            run_request_execute(self.run.pk, reason="time slice", count_attempt=False)
        return "continued"

    # --- persistence ----------------------------------------------------------------------

    def _check_not_halted(self) -> None:
        """A step boundary: stop (Halted) if the agent was halted (its run is cancelled
        already)."""
        refuse_if_halted(self.run.agent)

    def _save(self) -> None:
        updated = Run.objects.filter(
            pk=self.run.pk, lease_owner=self.owner, status=Run.Status.RUNNING
        ).update(state=_jsonable(self.state), lease_expires_at=expiry(), updated_at=timezone.now())
        if not updated:
            raise LeaseLost()

    def _release(self, *, state: bool) -> None:
        fields: dict[str, Any] = {
            "lease_owner": "",
            "lease_expires_at": None,
            "updated_at": timezone.now(),
        }
        if state:
            fields["state"] = _jsonable(self.state)
        if not Run.objects.filter(
            pk=self.run.pk, lease_owner=self.owner, status=Run.Status.RUNNING
        ).update(**fields):
            raise LeaseLost()

    def _receipt(self, checkpoint_id) -> str:
        """The approval's signed receipt (waits briefly for the ledger: ReceiptNotReady)."""
        cp = Checkpoint.with_drills.select_related("agent", "policy").get(pk=checkpoint_id)
        event = await_sealed(cp)
        sealed = receipt_token(cp, event=event)
        if sealed is None and event is not None and event[1] is None:
            raise ReceiptNotReady("the approval is not in the ledger yet; try again shortly")
        if sealed is None:
            raise ReceiptNotReady(f"checkpoint {checkpoint_id} has no receipt")
        return sealed.token

    def defer(self, why: str) -> str:
        """Give the run back and try again shortly (counted: a run that never gets going is
        dead-lettered by the reconcile sweep)."""
        with audit.atomic():
            self._release(state=True)
            run_request_execute(self.run.pk, reason=why)
        return "deferred"

    @contextmanager
    def _fenced(self):
        """A transaction that commits only while we still hold the lease."""
        with audit.atomic():
            self._save()
            yield

    def _event(self, kind: str, message: str, data: dict | None = None) -> None:
        RunEvent.objects.create(
            run=self.run, kind=kind, message=message[:2000], data=_jsonable(data or {})
        )


def _decider(cp: Checkpoint) -> str:
    """Who decided: a person's username, "policy <name> v<n>", or "system" (expiry)."""
    if cp.resolved_by_id:
        return cp.resolved_by.get_username()
    automatic = cp.decisions.filter(policy_version__isnull=False).select_related("policy_version")
    decision = automatic.first()
    return decision.decider_label if decision else "system"


def _confidence(*values: float | None) -> float | None:
    """The first reported confidence, clamped to 0..1."""
    for value in values:
        if isinstance(value, int | float) and value == value:
            return min(1.0, max(0.0, float(value)))
    return None


def _max_risk(a: str, b: str | None) -> str:
    if b and RISK_ORDER[b] > RISK_ORDER[a]:
        return b
    return a
