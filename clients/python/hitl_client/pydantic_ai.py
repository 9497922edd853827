"""pydantic-ai: submit a run's deferred tool requests to the portal and build the
`DeferredToolResults` that continue it (`pip install hitl-portal[pydantic-ai]`; pydantic-ai is
imported only when results or history are built).

    result = agent.run_sync("free some disk space")  # output_type=[str, DeferredToolRequests]
    if isinstance(result.output, DeferredToolRequests):
        cps = submit_deferred(client, result.output, result.all_messages(), agent=agent)
        # ... possibly another process, later:
        history, results = resume_results(client, cps)
        result = agent.run_sync(message_history=history, deferred_tool_results=results)

- Each approval (`requires_approval=True` / `ApprovalRequired`) is an `approval` checkpoint
  named `pydantic-ai:<tool_call_id>`, with the tool's parameters JSON schema as its
  `args_schema` (read from `agent=`, or given by name in `tool_schemas`), so a reviewer's edit
  the tool would refuse is refused at review time. The decision becomes `True` (approve),
  `ToolApproved(override_args=...)` (the reviewer's edit: pydantic-ai runs edited arguments
  natively) or `ToolDenied(message)` (rejected, expired, cancelled: the reason goes to the
  model).
- Each deferred call (`CallDeferred`, e.g. `kind="question"`) is a `question` checkpoint; the
  answer is the call's result (a rejection: `"[rejected] <reason>"`).
- The message history is stored once per pause, as a `json` artifact of the first
  checkpoint, with its sha256 in every checkpoint's context; `resume_results` refuses it if
  the digest differs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hitl_client._snapshot import load_snapshot, submit_pause
from hitl_client._text import one_line
from hitl_client.errors import HitlError
from hitl_client.models import Checkpoint

if TYPE_CHECKING:
    from hitl_client.client import HitlClient

SOURCE = "pydantic-ai"
HISTORY = "message_history.json"


def _args(part: Any) -> dict:
    args = part.args
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except ValueError:
            return {"args": args}
    return args if isinstance(args, dict) else {"args": args}


def _question(part: Any, args: dict) -> str:
    for key in ("question", "prompt", "message", "text"):
        if isinstance(args.get(key), str) and args[key].strip():
            return args[key]
    return f"{part.tool_name}({json.dumps(args)})"


def agent_tool_schemas(agent: Any) -> dict[str, dict]:
    """The parameters JSON schema of each of `agent`'s function tools, by the name the model
    calls it: tools registered on the agent (`@agent.tool`, `tools=[...]`) and the
    `FunctionToolset`s it was given. Tools whose name the agent only knows at run time (an MCP
    server's, a prefixed or renamed toolset's) are left out: their edits go unchecked at review
    time, as do those of a name two toolsets share."""
    from pydantic_ai.toolsets import FunctionToolset

    schemas: dict[str, dict] = {}
    shared: set[str] = set()
    for toolset in agent.toolsets:
        if not isinstance(toolset, FunctionToolset):
            continue
        for name, tool in toolset.tools.items():
            if name in schemas:
                shared.add(name)
            schemas[name] = tool.tool_def.parameters_json_schema
    return {name: schema for name, schema in schemas.items() if name not in shared}


def submit_deferred(
    client: HitlClient,
    requests: Any,
    messages: list[Any],
    *,
    agent: Any = None,
    run_external_id: str | None = None,
    title: str | None = None,
    tool_schemas: dict[str, dict] | None = None,
    risk: str = "medium",
) -> list[Checkpoint]:
    """One checkpoint per deferred approval and per deferred call; submitting the same
    requests again returns the same checkpoints. `agent`: the run's agent, whose tools'
    parameter schemas check reviewers' edits; `tool_schemas` ({tool name: JSON schema}) adds
    to or overrides them."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    schemas = {**(agent_tool_schemas(agent) if agent is not None else {}), **(tool_schemas or {})}

    history = ModelMessagesTypeAdapter.dump_json(messages).decode()
    parts = [("approval", p) for p in requests.approvals] + [("call", p) for p in requests.calls]
    if not parts:
        return []
    if run_external_id:
        run = client.ensure_run(run_external_id, title or f"pydantic-ai run {run_external_id}")
    else:
        run = client.start_run(title or f"pydantic-ai: {parts[0][1].tool_name}")
    metadata = requests.metadata or {}
    pause = []
    for kind, part in parts:
        args = _args(part)
        context: dict[str, Any] = {"tool_call_id": part.tool_call_id, "deferred": kind}
        if part.tool_call_id in metadata:
            context["metadata"] = metadata[part.tool_call_id]
        if kind == "approval":
            fields = {
                "title": title or part.tool_name,
                "tool": part.tool_name,
                "args": args,
                "args_schema": schemas.get(part.tool_name),
            }
        else:
            question = _question(part, args)
            fields = {
                "title": one_line(question.strip().splitlines()[0]),
                "kind": "question",
                "summary": question,
            }
        fields.update(run=run, risk=risk)
        pause.append((f"{SOURCE}:{part.tool_call_id}"[:255], context, fields))
    return submit_pause(client, SOURCE, (HISTORY, history), pause)


def _history(client: HitlClient, cp: Checkpoint) -> list[Any]:
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    return ModelMessagesTypeAdapter.validate_json(load_snapshot(client, cp, SOURCE, HISTORY))


def _reason(cp: Checkpoint) -> str:
    if cp.status == "rejected":
        return cp.reason or "rejected by a human reviewer"
    return (
        f"not approved ({cp.status}): {cp.reason}" if cp.reason else f"not approved ({cp.status})"
    )


def resume_results(
    client: HitlClient, checkpoints: list[Checkpoint], *, timeout: float | None = None
) -> tuple[list[Any], Any]:
    """Wait (long-poll) for every checkpoint; return the stored message history (digest
    checked) and the `DeferredToolResults` to continue the run with."""
    from pydantic_ai import DeferredToolResults, ToolApproved, ToolDenied

    if not checkpoints:
        raise HitlError("no checkpoints to resume from")
    decided = [cp if not cp.pending else client.wait(cp.id, timeout=timeout) for cp in checkpoints]
    results = DeferredToolResults()
    for cp in decided:
        context = (cp.data.get("context") or {}).get(SOURCE) or {}
        call_id = context["tool_call_id"]
        if context.get("deferred") == "call":
            results.calls[call_id] = (
                cp.answer if cp.status == "answered" else f"[{cp.status}] {_reason(cp)}"
            )
        elif cp.status == "approved":
            results.approvals[call_id] = (
                ToolApproved(override_args=cp.approved_args) if cp.edited else True
            )
        elif cp.status == "answered":
            results.approvals[call_id] = ToolDenied(
                f"Not run; the reviewer answered instead: {cp.answer}"
            )
        else:
            results.approvals[call_id] = ToolDenied(_reason(cp))
    return _history(client, decided[0]), results
