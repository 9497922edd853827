"""The base class of hosted agents: tools, approval rules, a deterministic script, input checks.

An `Agent` row with kind `hosted` names a subclass by dotted path (`runtime`); its `config`
JSON overrides class defaults (e.g. `{"planner": "llm"}`, `{"database": "shop.sqlite3"}`).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from agents.models import Agent
from agents.runtime.planners import LLMPlanner, Plan, Planner, PlanView, ScriptedPlanner
from agents.runtime.rules import ApprovalRule, requirement
from agents.runtime.tools import Tool, tool


class InvalidRunInput(ValueError):
    """A run's task or input is unusable; `errors` maps field → message (400 / form errors)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class AgentNotRunnable(Exception):
    """The agent row cannot be run (not hosted, inactive, runtime class missing)."""


@tool(requires_approval=True, risk="low", name="ask_human")
def ask_human(question: str, options: list[str] | None = None) -> dict:
    """Ask the reviewers a question and continue with their answer.

    Args:
        question: what you need to know, with enough context to answer it
        options: the allowed answers, if the answer must be one of them
    """
    raise AssertionError("ask_human is handled by the runtime, never called")


class HostedAgent:
    """Subclass and set `tools`, optionally `rules`, and write `script()`."""

    name = "Hosted agent"
    description = ""
    tools: list[Tool] = []
    rules: list[ApprovalRule] = []
    system_prompt = (
        "You are an operations agent. Use the tools to do the task. Risky tools are reviewed "
        "by a human before they run; if a reviewer rejects a call, read the reason and either "
        "propose something different or finish. Never repeat a rejected call unchanged. When "
        "you are done, answer with a short report of what you did and did not do."
    )
    default_task = ""
    default_input: dict[str, Any] = {}
    default_config: dict[str, Any] = {}
    max_steps = 20
    allow_questions = True

    def __init__(self, row: Agent):
        self.row = row
        self.config = {**self.default_config, **(row.config or {})}

    # --- what a subclass provides ---------------------------------------------------------

    def script(self, view: PlanView) -> Plan:
        """The deterministic planner. The default finishes at once."""
        return Plan.finish("This agent has no script; configure the LLM planner.")

    def clean_input(self, task: str, data: dict) -> dict:
        """Check and normalise a run's input before the run exists. Raise InvalidRunInput."""
        return data

    # --- used by the runtime --------------------------------------------------------------

    def all_tools(self) -> list[Tool]:
        return [*self.tools, *([ask_human] if self.allow_questions else [])]

    def get_tool(self, name: str) -> Tool | None:
        return next((t for t in self.all_tools() if t.name == name), None)

    def all_rules(self) -> list[ApprovalRule]:
        return [*self.rules, *self.config_rules()]

    def config_rules(self) -> list[ApprovalRule]:
        """Rules an admin adds in the agent's config: {"approve_when_more_than":
        {"tool": "delete_*", "arg": "files", "n": 10}}."""
        from agents.runtime.rules import more_than

        spec = self.config.get("approve_when_more_than")
        if isinstance(spec, dict) and {"tool", "arg", "n"} <= spec.keys():
            return [more_than(int(spec["n"]), tool=spec["tool"], arg=spec["arg"])]
        return []

    def planner(self) -> Planner:
        kind = self.config.get("planner", "scripted")
        if kind == "llm":
            return LLMPlanner(
                base_url=self.config.get("llm_base_url") or settings.HITL_LLM_BASE_URL,
                model=self.config.get("llm_model") or settings.HITL_LLM_MODEL,
                api_key=settings.HITL_LLM_API_KEY,
            )
        if kind != "scripted":
            raise AgentNotRunnable(f"unknown planner {kind!r} (use 'scripted' or 'llm')")
        return ScriptedPlanner(self.script)

    def approval_timeout(self) -> int | None:
        value = self.config.get("approval_timeout_seconds")
        return int(value) if value else None

    def describe_tools(self) -> list[dict]:
        """For people starting a run: each tool, and whether calling it always needs approval
        (rules may ask for it on some arguments too)."""
        return [
            {
                "name": t.name,
                "description": t.description,
                "approval": requirement(t, {}, []).needed,
                "risk": t.risk,
            }
            for t in self.tools
        ]


def load_agent(row: Agent) -> HostedAgent:
    if row.kind != Agent.Kind.HOSTED:
        raise AgentNotRunnable(f"agent {row.slug!r} is not a hosted agent")
    if not row.runtime:
        raise AgentNotRunnable(f"agent {row.slug!r} has no runtime class")
    try:
        cls = import_string(row.runtime)
    except ImportError as exc:
        raise AgentNotRunnable(
            f"agent {row.slug!r}: cannot import {row.runtime!r}: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, HostedAgent)):
        raise AgentNotRunnable(f"{row.runtime!r} is not a HostedAgent subclass")
    return cls(row)


def clean_run_request(row: Agent, task: str, data: Any) -> tuple[HostedAgent, str, dict]:
    """Everything the admin form, the API and `startrun` check before a run exists."""
    if not row.active:
        raise InvalidRunInput({"agent": f"agent {row.slug!r} is inactive"})
    try:
        agent = load_agent(row)
    except AgentNotRunnable as exc:
        raise InvalidRunInput({"agent": str(exc)}) from None
    if isinstance(data, str):
        try:
            data = json.loads(data) if data.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidRunInput({"input": f"not valid JSON: {exc}"}) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidRunInput({"input": "must be a JSON object"})
    task = (task or "").strip() or agent.default_task
    if not task:
        raise InvalidRunInput({"task": "a task is required"})
    if not data:
        # No input at all: the agent's example input (what the admin form is pre-filled with).
        data = {**agent.default_input, **agent.config.get("default_input", {})}
    return agent, task, agent.clean_input(task, data)
