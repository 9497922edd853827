"""LangGraph: turn a paused graph's interrupts into portal checkpoints, and the decisions into
`Command(resume=...)` (`pip install hitl-portal[langgraph]`; LangGraph is imported only when
a command is built).

    out = graph.invoke(inputs, config, version="v2")
    cps = submit_interrupts(client, out.interrupts, thread_id=config["configurable"]["thread_id"])
    # ... reviewers decide in the portal; later, maybe in another process:
    cmd = resume_command(client, graph.get_state(config).interrupts, cps)
    graph.invoke(cmd, config, version="v2")

It speaks the three interrupt dialects in use: langchain's `HumanInTheLoopMiddleware`
(`HITLRequest`, batched; `ToolApprovalRequest`, per call), Agent Inbox `HumanInterrupt`
lists, and any other value (a plain `interrupt("what is your age?")`), which becomes a
question whose answer is the resume value. One checkpoint per action request, named
`langgraph:<thread>:<interrupt id>:<index>`: a node that re-runs (LangGraph replays it from
its start) or a new process submits the same interrupts again and gets the same checkpoints.
The decisions each interrupt allows become the checkpoint's `allowed_outcomes`, so the portal
refuses the others when the reviewer makes them; edited arguments come back with their JSON
types (Agent Inbox's own UI turns them into strings; this does not).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hitl_client._text import one_line
from hitl_client.models import Checkpoint

if TYPE_CHECKING:
    from hitl_client.client import HitlClient

SOURCE = "langgraph"
BATCHED, PER_CALL, INBOX, PLAIN = "hitl_request", "tool_approval", "agent_inbox", "value"
ALL_DECISIONS = ["approve", "edit", "reject", "respond"]
TO_OUTCOME = {"approve": "approve", "edit": "modify", "reject": "reject", "respond": "answer"}


@dataclass
class _Action:
    """One thing to review inside an interrupt."""

    index: int
    kind: str  # approval | question
    tool: str = ""
    args: dict = field(default_factory=dict)
    description: str = ""
    allowed: list[str] = field(default_factory=list)  # portal outcomes
    args_schema: dict | None = None
    tool_call_id: str | None = None
    allow_respond: bool = True  # Agent Inbox: a rejection is a "response" only if allowed


def _dialect(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("action_requests"), list):
        return BATCHED
    if isinstance(value, dict) and value.get("type") == "tool_approval":
        return PER_CALL
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and "action_request" in v for v in value)
    ):
        return INBOX
    return PLAIN


def _outcomes(decisions: Iterable[str]) -> list[str]:
    return sorted({TO_OUTCOME[d] for d in decisions if d in TO_OUTCOME})


def _schema_decisions(schema: Any) -> set[str]:
    """The decision types a per-call `response_schema` allows (its `type` constants)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = (node.get("properties") or {}).get("type")
            if isinstance(kind, dict):
                for key in ("const", "enum", "default"):
                    value = kind.get(key)
                    for v in value if isinstance(value, list) else [value]:
                        if v in TO_OUTCOME:
                            found.add(v)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    return found


def _args_schema(schema: Any, tool: str) -> dict | None:
    """The tool's argument schema from a per-call `response_schema` (`$defs.<tool>`)."""
    defs = schema.get("$defs") if isinstance(schema, dict) else None
    if not isinstance(defs, dict) or not isinstance(defs.get(tool), dict):
        return None
    return {**defs[tool], "$defs": defs}


def _actions(interrupt: Any) -> tuple[str, list[_Action]]:
    value = interrupt.value
    dialect = _dialect(value)
    if dialect == BATCHED:
        configs = {c.get("action_name"): c for c in value.get("review_configs") or []}
        actions = []
        for i, request in enumerate(value["action_requests"]):
            name = request.get("name", "")
            allowed = (configs.get(name) or {}).get("allowed_decisions") or ALL_DECISIONS
            actions.append(
                _Action(
                    i,
                    "approval",
                    name,
                    dict(request.get("args") or {}),
                    request.get("description") or "",
                    _outcomes(allowed),
                )
            )
        return dialect, actions
    if dialect == PER_CALL:
        schema = getattr(interrupt, "response_schema", None)
        allowed = _schema_decisions(schema) or set(ALL_DECISIONS)
        return dialect, [
            _Action(
                0,
                "approval",
                value.get("name", ""),
                dict(value.get("args") or {}),
                value.get("description") or "",
                _outcomes(allowed),
                _args_schema(schema, value.get("name", "")),
                value.get("tool_call_id"),
            )
        ]
    if dialect == INBOX:
        actions = []
        for i, item in enumerate(value):
            config = item.get("config") or {}
            request = item.get("action_request") or {}
            allowed = [
                outcome
                for flag, outcome in (
                    ("allow_accept", "approve"),
                    ("allow_edit", "modify"),
                    ("allow_respond", "answer"),
                )
                if config.get(flag)
            ]
            if config.get("allow_respond") or config.get("allow_ignore"):
                allowed.append("reject")
            actions.append(
                _Action(
                    i,
                    "approval",
                    request.get("action", ""),
                    dict(request.get("args") or {}),
                    item.get("description") or "",
                    sorted(set(allowed)),
                    allow_respond=bool(config.get("allow_respond")),
                )
            )
        return dialect, actions
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return dialect, [_Action(0, "question", description=text)]


def _external_id(thread_id: str, interrupt_id: str, index: int) -> str:
    return f"{SOURCE}:{thread_id}:{interrupt_id}:{index}"[:255]


def _title(title: str | None, action: _Action) -> str:
    if title:
        text = title
    else:
        lines = (action.description or "").strip().splitlines()
        text = lines[0] if lines else (f"Run {action.tool}" if action.tool else "Question")
        if action.kind == "approval" and action.tool and action.tool not in text:
            text = f"{action.tool}: {text}"
    return one_line(text)


def submit_interrupts(
    client: HitlClient, interrupts: Iterable[Any], *, thread_id: str, title: str | None = None
) -> list[Checkpoint]:
    """One checkpoint per action request, in interrupt order then action order. Submitting the
    same interrupts again returns the same checkpoints."""
    run = client.ensure_run(
        f"{SOURCE}:{thread_id}",
        title or f"LangGraph thread {thread_id}",
        metadata={"source": SOURCE},
    )
    checkpoints = []
    for interrupt in interrupts:
        dialect, actions = _actions(interrupt)
        for action in actions:
            external_id = _external_id(thread_id, interrupt.id, action.index)
            context = {
                "source": SOURCE,
                SOURCE: {
                    "thread_id": thread_id,
                    "interrupt_id": interrupt.id,
                    "index": action.index,
                    "dialect": dialect,
                    **({"tool_call_id": action.tool_call_id} if action.tool_call_id else {}),
                },
            }
            common = dict(
                run=run,
                external_id=external_id,
                idempotency_key=external_id,
                context=context,
                summary=action.description,
            )
            if action.kind == "question":
                cp = client.request_approval(_title(title, action), kind="question", **common)
            else:
                cp = client.request_approval(
                    _title(title, action),
                    tool=action.tool,
                    args=action.args,
                    allowed_outcomes=action.allowed,
                    args_schema=action.args_schema,
                    **common,
                )
            checkpoints.append(cp)
    return checkpoints


def _reason(cp: Checkpoint) -> str:
    if cp.status in ("expired", "cancelled"):
        return f"{cp.status}: {cp.reason}"
    return cp.reason or cp.status


def _decision(dialect: str, action: _Action, cp: Checkpoint) -> Any:
    """The portal's decision as the resume value the dialect expects."""
    outcome = (cp.decision or {}).get("outcome")
    args = (cp.approved_action or {}).get("args")
    if dialect == PLAIN:
        return cp.answer if cp.status == "answered" else f"[{cp.status}] {_reason(cp)}"
    if dialect == INBOX:
        if outcome == "approve":
            return {"type": "accept", "args": None}
        if outcome == "modify":
            return {"type": "edit", "args": {"action": action.tool, "args": args}}
        if outcome == "answer":
            return {"type": "response", "args": cp.answer}
        if action.allow_respond:
            return {"type": "response", "args": _reason(cp)}
        return {"type": "ignore", "args": None}
    if outcome == "approve":
        return {"type": "approve"}
    if outcome == "modify":
        return {"type": "edit", "edited_action": {"name": action.tool, "args": args}}
    if outcome == "answer":
        return {"type": "respond", "message": cp.answer or ""}
    return {"type": "reject", "message": _reason(cp)}


def resume_value(interrupt: Any, checkpoints: list[Checkpoint]) -> Any:
    """The resume value for one interrupt from its (decided) checkpoints."""
    dialect, actions = _actions(interrupt)
    by_index = {
        ((cp.data.get("context") or {}).get(SOURCE) or {}).get("index"): cp
        for cp in checkpoints
        if ((cp.data.get("context") or {}).get(SOURCE) or {}).get("interrupt_id") == interrupt.id
    }
    missing = [a.index for a in actions if a.index not in by_index]
    if missing:
        raise ValueError(f"no checkpoint for interrupt {interrupt.id} action(s) {missing}")
    values = [_decision(dialect, a, by_index[a.index]) for a in actions]
    if dialect == BATCHED:
        return {"decisions": values}
    if dialect == INBOX:
        return values
    return values[0]


def resume_command(
    client: HitlClient,
    interrupts: Iterable[Any],
    checkpoints: list[Checkpoint],
    *,
    timeout: float | None = None,
):
    """Wait (long-poll) until every checkpoint is decided, then the `Command` that resumes
    the graph: `Command(resume={interrupt.id: value, ...})`. Raises WaitTimeout after
    `timeout` seconds."""
    from langgraph.types import Command

    decided = [cp if not cp.pending else client.wait(cp.id, timeout=timeout) for cp in checkpoints]
    interrupts = list(interrupts)
    return Command(resume={i.id: resume_value(i, decided) for i in interrupts})
