"""OpenAI Agents SDK: submit a paused run's tool approvals to the portal, keep its `RunState`
there, and resume it with the reviewers' decisions (`pip install hitl-portal[openai-agents]`;
the SDK is imported only when a state is loaded).

    agent = Agent(name="janitor", model=..., tools=wrap_tools([delete_files]))
    result = await Runner.run(agent, "free some disk space")
    if result.interruptions:
        cps = submit_interruptions(client, result)
        # ... possibly another process, later, with a fresh Agent built the same way:
        state = await resume_state(client, agent, cps)
        result = await Runner.run(agent, state)

- Each interruption is an `approval` checkpoint named `openai-agents:<call_id>` (submitting
  again finds and returns the same checkpoints), with the tool's `params_json_schema` as its
  `args_schema`, so a reviewer's edit that the tool could not take is refused at review time.
- The serialized `RunState` is stored once per pause, as a `json` artifact of the pause's
  first checkpoint, with its sha256 in every checkpoint's context. `resume_state` loads it
  from the portal and refuses it if the digest differs: the SDK warns to deserialize only
  trusted, integrity-checked state, and reviewers can never edit it.
- The SDK's `approve()` cannot change arguments (approvals are bound to the call's
  fingerprint), so an edit runs through `wrap_tools`: the wrapped tool, invoked for the
  approved call, runs with the reviewer's arguments instead of the model's and tells the model
  so in front of its output. A rejection's reason is the tool output the model reads.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from hitl_client._snapshot import aload_snapshot, submit_pause
from hitl_client.errors import HitlError
from hitl_client.models import Checkpoint

if TYPE_CHECKING:
    from hitl_client.client import HitlClient

SOURCE = "openai-agents"
STATE = "run_state.json"
EDIT_NOTICE = (
    "[A human reviewer edited this call before approving it; it ran with these arguments: {args}]\n"
)

# Edited arguments by tool call id, for the wrapped tools of this process: `resume_state`
# registers them, the approved call's tool takes (and removes) its entry.
_EDITS: dict[str, str] = {}


def wrap_tools(tools: list[Any]) -> list[Any]:
    """The tools, with each `FunctionTool` able to run a reviewer's edited arguments for the
    call it was approved for; other tools unchanged."""
    from agents import FunctionTool

    wrapped = []
    for tool in tools:
        if isinstance(tool, FunctionTool):
            wrapped.append(dataclasses.replace(tool, on_invoke_tool=_honour_edits(tool)))
        else:
            wrapped.append(tool)
    return wrapped


def _honour_edits(tool: Any):
    original = tool.on_invoke_tool

    async def invoke(ctx: Any, input_json: str) -> Any:
        edited = _EDITS.pop(getattr(ctx, "tool_call_id", ""), None)
        if edited is None:
            return await original(ctx, input_json)
        output = await original(ctx, edited)
        return EDIT_NOTICE.format(args=edited) + str(output)

    return invoke


def _tool_schema(agent: Any, name: str) -> dict | None:
    for tool in getattr(agent, "tools", None) or []:
        if getattr(tool, "name", None) == name and isinstance(
            getattr(tool, "params_json_schema", None), dict
        ):
            return tool.params_json_schema
    return None


def submit_interruptions(
    client: HitlClient,
    result: Any,
    *,
    title: str | None = None,
    run_external_id: str | None = None,
    risk: str = "medium",
) -> list[Checkpoint]:
    """One `approval` checkpoint per interruption of `result` (decided independently), the run
    state stored with the first. `run_external_id`: the portal run to use (get-or-create),
    else one run per pause."""
    interruptions = list(result.interruptions)
    if not interruptions:
        return []
    if run_external_id:
        run = client.ensure_run(run_external_id, title or f"OpenAI agent run {run_external_id}")
    else:
        first = interruptions[0]
        run = client.start_run(title or f"{first.agent.name}: {first.tool_name}")
    requests = []
    for item in interruptions:
        raw = item.raw_item
        call_id = getattr(raw, "call_id", None) or getattr(raw, "id", "")
        try:
            args = json.loads(getattr(raw, "arguments", "{}") or "{}")
        except ValueError:
            args = {"arguments": raw.arguments}
        fields = {
            "title": title or item.tool_name,
            "tool": item.tool_name,
            "args": args if isinstance(args, dict) else {"arguments": args},
            "args_schema": _tool_schema(item.agent, item.tool_name),
            "risk": risk,
            "run": run,
        }
        context = {"call_id": call_id, "agent": item.agent.name}
        requests.append((f"{SOURCE}:{call_id}"[:255], context, fields))
    return submit_pause(client, SOURCE, (STATE, result.to_state().to_string()), requests)


def _rejection(cp: Checkpoint) -> str:
    if cp.status == "rejected":
        return cp.reason or "rejected by a human reviewer"
    if cp.status == "answered":
        return f"Not run; the reviewer answered instead: {cp.answer}"
    return (
        f"not approved ({cp.status}): {cp.reason}" if cp.reason else f"not approved ({cp.status})"
    )


async def resume_state(
    client: HitlClient, agent: Any, checkpoints: list[Checkpoint], *, timeout: float | None = None
) -> Any:
    """The paused run's `RunState`, loaded from the portal (digest checked), with every
    decision applied: approve → `approve`; modify → the edit registered for the wrapped tool,
    then `approve`; reject / expired / cancelled → `reject` with the reason as the tool's
    output. Waits (long-poll) for every checkpoint; WaitTimeout after `timeout` seconds."""
    from agents import RunState

    if not checkpoints:
        raise HitlError("no checkpoints to resume from")
    decided = [await client.await_checkpoint(cp.id, timeout=timeout) for cp in checkpoints]
    text = await aload_snapshot(client, decided[0], SOURCE, STATE)
    state = await RunState.from_string(agent, text.decode())
    by_call = {
        ((cp.data.get("context") or {}).get(SOURCE) or {}).get("call_id"): cp for cp in decided
    }
    for item in state.get_interruptions():
        raw = item.raw_item
        call_id = getattr(raw, "call_id", None) or getattr(raw, "id", "")
        cp = by_call.get(call_id)
        if cp is None:
            continue  # not submitted with these checkpoints: the SDK will ask again
        if cp.status == "approved":
            if cp.edited:
                _EDITS[call_id] = json.dumps(cp.approved_args)
            state.approve(item)
        else:
            state.reject(item, rejection_message=_rejection(cp))
    return state
