"""OpenAI Agents SDK: submit a paused run's tool approvals to the portal, keep its `RunState`
there, and resume it with the reviewers' decisions (`pip install hitl-client[openai-agents]`;
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
- Only a `FunctionTool` wrapped by `wrap_tools` can take an edit. For any other tool (not
  wrapped, hosted MCP, shell, apply_patch, computer, a custom tool) the checkpoint offers
  reviewers approve and reject only; and if an edit reaches such a tool anyway (e.g. the agent
  that resumes was built without `wrap_tools`), the call is rejected, with a reason saying
  why, rather than approved: approving would run the model's original arguments.
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
# Set on the invoker `wrap_tools` installs: it survives the SDK's copies of the tool.
_HONOURS_EDITS = "__hitl_honours_edits__"
NO_EDIT_OUTCOMES = ["approve", "reject"]
CANNOT_EDIT = (
    "Not run: a human reviewer approved this call only with edited arguments ({args}), and "
    "the {tool} tool cannot take edits ({why}), so it was not run with the original ones either."
)


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

    setattr(invoke, _HONOURS_EDITS, True)
    return invoke


def _why_not_editable(agent: Any, name: str) -> str | None:
    """Why `agent`'s tool `name` cannot run a reviewer's edit; None if it can (a
    `FunctionTool` from `wrap_tools`). Tools that are not in `agent.tools` (an MCP server's)
    cannot either."""
    from agents import FunctionTool

    tools = [t for t in getattr(agent, "tools", None) or [] if getattr(t, "name", None) == name]
    if not tools:
        return "it is not one of the agent's own tools"
    for tool in tools:
        if not isinstance(tool, FunctionTool):
            return f"a {type(tool).__name__} takes no edited arguments"
        if not getattr(tool.on_invoke_tool, _HONOURS_EDITS, False):
            return "it was not wrapped with hitl_client.openai_agents.wrap_tools"
    return None


def _tool_schema(agent: Any, name: str) -> dict | None:
    for tool in getattr(agent, "tools", None) or []:
        if getattr(tool, "name", None) == name and isinstance(
            getattr(tool, "params_json_schema", None), dict
        ):
            return tool.params_json_schema
    return None


def _call_args(item: Any) -> dict:
    """What the call would do, for the reviewer: a function call's arguments; for a hosted or
    built-in tool's call (shell, apply_patch, computer: no `arguments`), its raw item's fields
    (`action`, `operation`, ...)."""
    text = item.arguments
    if text is not None:
        try:
            value = json.loads(text or "{}")
        except ValueError:
            return {"arguments": text}
        return value if isinstance(value, dict) else {"arguments": value}
    raw = item.raw_item
    if hasattr(raw, "model_dump"):
        raw = raw.model_dump(mode="json", exclude_none=True)
    if not isinstance(raw, dict):
        return {}
    skip = ("id", "call_id", "type", "status")
    return {k: v for k, v in raw.items() if k not in skip and v is not None}


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
        call_id = item.call_id or ""
        fields = {
            "title": title or item.tool_name,
            "tool": item.tool_name,
            "args": _call_args(item),
            "args_schema": _tool_schema(item.agent, item.tool_name),
            "risk": risk,
            "run": run,
        }
        if _why_not_editable(item.agent, item.tool_name) is not None:
            fields["allowed_outcomes"] = NO_EDIT_OUTCOMES  # no edit the tool cannot run
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
    then `approve` (or `reject`, saying why, when the tool cannot take the edit: approving
    would run the model's arguments); reject / expired / cancelled → `reject` with the reason
    as the tool's output. Waits (long-poll) for every checkpoint; WaitTimeout after `timeout`
    seconds."""
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
        call_id = item.call_id or ""
        cp = by_call.get(call_id)
        if cp is None:
            continue  # not submitted with these checkpoints: the SDK will ask again
        if cp.status != "approved":
            state.reject(item, rejection_message=_rejection(cp))
        elif not cp.edited:
            state.approve(item)
        elif (why := _why_not_editable(item.agent, item.tool_name)) is not None:
            args = json.dumps(cp.approved_args)
            message = CANNOT_EDIT.format(args=args, tool=item.tool_name, why=why)
            state.reject(item, rejection_message=message)
        else:
            _EDITS[call_id] = json.dumps(cp.approved_args)
            state.approve(item)
    return state
