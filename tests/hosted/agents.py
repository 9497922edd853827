"""Hosted agents for tests (importable by qcluster subprocesses too: `tests.hosted.agents.X`).

`LedgerAgent` plays `config["turns"]` in order: each turn is a list of calls
`[{"tool": ..., "args": {...}}]`; after the last turn it finishes with a summary of outcomes.
Its tools write lines to a ledger file (`config["ledger"]`), tagged with the step's
idempotency key, so a test can count exactly how often each effect happened.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from agents.runtime import HostedAgent, Plan, PlanView, StaleAction, ToolContext, ToolError, tool
from agents.runtime.planners import ToolCall
from agents.runtime.rules import more_than


def _ledger(ctx: ToolContext) -> Path:
    return Path(ctx.config["ledger"])


def ledger_lines(path: str | Path) -> list[str]:
    p = Path(path)
    return p.read_text().splitlines() if p.exists() else []


def _write_once(ctx: ToolContext, text: str) -> bool:
    """Append `key text` unless this key is already there (the tool's own idempotency)."""
    path = _ledger(ctx)
    if ctx.recovering and any(
        line.startswith(ctx.idempotency_key + " ") for line in ledger_lines(path)
    ):
        return False
    with path.open("a") as fh:
        fh.write(f"{ctx.idempotency_key} {text}\n")
        fh.flush()
        os.fsync(fh.fileno())
    return True


@tool
def note(ctx: ToolContext, text: str) -> dict:
    """Write a note (no approval needed).

    Args:
        text: the note
    """
    _write_once(ctx, f"note {text}")
    return {"noted": text}


def _positive(args: dict, ctx: ToolContext) -> None:
    if args["amount"] <= 0:
        raise ToolError("amount must be positive")


@tool(requires_approval=True, risk="high", validate=_positive)
def transfer(ctx: ToolContext, amount: int, to: str) -> dict:
    """Move money.

    Args:
        amount: how much, in cents
        to: the receiving account
    """
    delay = float(ctx.config.get("effect_delay", 0))
    written = _write_once(ctx, f"transfer {amount} {to}")
    if delay and written:
        time.sleep(delay)  # a slow effect: the crash test kills the worker here
    return {"sent": amount, "to": to}


@transfer.revalidate
def _account_open(args: dict, ctx: ToolContext) -> None:
    closed = Path(ctx.config["ledger"]).with_suffix(".closed")
    if closed.exists() and args["to"] in closed.read_text().split():
        raise StaleAction(f"account {args['to']} was closed meanwhile")


@tool
def tag_files(ctx: ToolContext, files: list[str]) -> dict:
    """Tag files (no approval unless a policy says so).

    Args:
        files: the files to tag
    """
    _write_once(ctx, "tag " + ",".join(files))
    return {"tagged": len(files)}


class LedgerAgent(HostedAgent):
    name = "Ledger test agent"
    tools = [note, transfer, tag_files]
    rules = [more_than(2, tool="tag_files", arg="files", what="files")]

    def script(self, view: PlanView) -> Plan:
        turns = self.config.get("turns", [])
        if view.step < len(turns):
            return Plan(
                calls=[ToolCall(c["tool"], c.get("args", {})) for c in turns[view.step]],
                thought=f"turn {view.step + 1}",
            )
        outcomes = ", ".join(f"{r['tool']}={r['outcome']}" for r in view.results)
        return Plan.finish(f"done: {outcomes}")


@tool
def pull_the_plug(ctx: ToolContext, by: str, reason: str) -> dict:
    """Stands in for a manager pressing the kill switch while this run works (no approval).

    Args:
        by: the manager's username
        reason: why
    """
    from django.contrib.auth import get_user_model

    from agents.transitions import agent_halt

    _write_once(ctx, "plug pulled")
    agent_halt(ctx.agent.pk, get_user_model().objects.get(username=by), reason=reason)
    return {"halted": True}


class HaltingLedgerAgent(LedgerAgent):
    """The ledger agent with a tool that halts it (the kill switch tests)."""

    tools = [*LedgerAgent.tools, pull_the_plug]
