"""An agent application on the OpenAI Agents SDK, as a user writes it with
`hitl_client.openai_agents`; the test runs it as separate processes (one pauses and submits,
another resumes), with only `hitl_client` importable next to the SDK: the SDK's top-level
package is named `agents`, like the portal's Django app, so the two cannot share a process.

    python openai_agents_app.py submit <run_external_id|->   → prints the checkpoint ids
    python openai_agents_app.py resume <id> [<id> ...]        → prints what ran, what the model saw
    python openai_agents_app.py tamper-check <id> ...         → prints the error
    python openai_agents_app.py submit-mixed                  → a wrapped tool, an unwrapped
                                                                one, and apply_patch
    python openai_agents_app.py resume-mixed <id> ...         → resumed by an agent built
                                                                without wrap_tools

The LLM is the SDK's own `ScriptedModel` (no network); everything else is the SDK's code.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

from agents.testing import ScriptedModel, assistant_message, function_call

from agents import Agent, ApplyPatchTool, Runner, function_tool
from hitl_client import Checkpoint, HitlClient
from hitl_client.errors import HitlError
from hitl_client.openai_agents import resume_state, submit_interruptions, wrap_tools

EXECUTED: list = []


@function_tool(needs_approval=True)
def delete_files(paths: list[str], older_than_days: int, dry_run: bool) -> str:
    """Delete files older than a number of days."""
    EXECUTED.append(["delete_files", paths, older_than_days, dry_run])
    return f"deleted {len(paths)} files"


@function_tool(needs_approval=True)
def restart(service: str) -> str:
    """Restart a service."""
    EXECUTED.append(["restart", service])
    return "restarted"


@function_tool(needs_approval=True)
def reboot(host: str) -> str:
    """Reboot a host."""
    EXECUTED.append(["reboot", host])
    return "rebooted"


class Editor:
    """The apply_patch tool's editor: records what it was asked to do."""

    def create_file(self, operation):
        EXECUTED.append(["apply_patch", "create", operation.path])

    def update_file(self, operation):
        EXECUTED.append(["apply_patch", "update", operation.path])

    def delete_file(self, operation):
        EXECUTED.append(["apply_patch", "delete", operation.path])


def build_agent(*steps) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(list(steps))
    return Agent(name="janitor", model=model, tools=wrap_tools([delete_files, restart])), model


def build_mixed_agent(*steps, wrapped: bool = True) -> tuple[Agent, ScriptedModel]:
    """delete_files wrapped (or not: an app that forgot `wrap_tools` on resume), reboot never
    wrapped, and the SDK's apply_patch tool (no JSON arguments at all)."""
    model = ScriptedModel(list(steps))
    patch = ApplyPatchTool(editor=Editor(), needs_approval=True)
    tools = [*(wrap_tools([delete_files]) if wrapped else [delete_files]), reboot, patch]
    return Agent(name="janitor", model=model, tools=tools), model


def _outputs(model: ScriptedModel) -> dict:
    """Every tool output the model was sent on its last call, by call id."""
    return {
        item["call_id"]: item["output"]
        for item in model.last_call.input
        if isinstance(item, dict) and str(item.get("type", "")).endswith("_call_output")
    }


async def main(command: str, args: list[str]) -> dict:
    client = HitlClient()  # HITL_URL, HITL_API_KEY
    if command == "submit":
        agent, _ = build_agent(
            [
                function_call(
                    "delete_files",
                    {"paths": ["/var/log/a.log"], "older_than_days": 30, "dry_run": True},
                    call_id="call_del",
                ),
                function_call("restart", {"service": "web"}, call_id="call_rst"),
            ]
        )
        result = await Runner.run(agent, "free some disk space")
        external = None if args[0] == "-" else args[0]
        cps = submit_interruptions(client, result, run_external_id=external)
        again = submit_interruptions(client, result, run_external_id=external)
        return {
            "interruptions": len(result.interruptions),
            "executed": EXECUTED,
            "checkpoints": [cp.id for cp in cps],
            "again": [cp.id for cp in again],
        }
    if command == "submit-mixed":
        agent, _ = build_mixed_agent(
            [
                function_call(
                    "delete_files",
                    {"paths": ["/tmp/a"], "older_than_days": 30, "dry_run": True},
                    call_id="call_del",
                ),
                function_call("reboot", {"host": "db1"}, call_id="call_reboot"),
                {
                    "type": "apply_patch_call",
                    "call_id": "call_patch",
                    "operation": {"type": "delete_file", "path": "settings.py"},
                },
            ]
        )
        result = await Runner.run(agent, "tidy up")
        cps = submit_interruptions(client, result)
        return {"executed": EXECUTED, "checkpoints": [cp.id for cp in cps]}
    cps = [Checkpoint(client, {"id": cp_id, "status": "pending"}) for cp_id in args]
    if command == "resume-mixed":
        agent, model = build_mixed_agent([assistant_message("done")], wrapped=False)
        final = await Runner.run(agent, await resume_state(client, agent, cps))
        return {"executed": EXECUTED, "outputs": _outputs(model), "final": final.final_output}
    agent, model = build_agent([assistant_message("done")])
    if command == "tamper-check":
        try:
            await resume_state(client, agent, cps)
        except HitlError as exc:
            return {"error": str(exc)}
        return {"error": None}
    final = await Runner.run(agent, await resume_state(client, agent, cps))
    outputs = {
        item["call_id"]: item["output"]
        for item in model.last_call.input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }
    return {"executed": EXECUTED, "outputs": outputs, "final": final.final_output}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2:]))))
