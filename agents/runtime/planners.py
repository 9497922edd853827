"""Planners decide a hosted run's next move from its transcript: call tools, or finish.

- `ScriptedPlanner`: deterministic; the agent's own `script(view)` function picks the next
  calls from the results so far. Built-in agents, the demo and tests use it; no LLM needed.
- `LLMPlanner`: any OpenAI-compatible chat-completions endpoint (`HITL_LLM_BASE_URL`,
  `HITL_LLM_MODEL`, `HITL_LLM_API_KEY`), with the agent's tools offered as functions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from django.conf import settings

from agents.runtime.tools import Tool

log = logging.getLogger(__name__)


@dataclass
class ToolCall:
    name: str
    args: dict | None
    id: str = ""
    # Set when the planner's arguments could not even be parsed (bad JSON from an LLM).
    error: str = ""
    # The planner's confidence in this call, 0..1 (sent with its checkpoint; policies may
    # approve confident, low-risk calls automatically). None: not reported.
    confidence: float | None = None


@dataclass
class Plan:
    calls: list[ToolCall] = field(default_factory=list)
    final: str | None = None
    thought: str = ""

    @classmethod
    def call(cls, name: str, thought: str = "", **args: Any) -> Plan:
        return cls(calls=[ToolCall(name, args)], thought=thought)

    @classmethod
    def finish(cls, text: str) -> Plan:
        return cls(final=text)


@dataclass
class PlanView:
    """What a planner sees. `results` is the compact history the runtime keeps: one entry per
    finished call with its outcome (executed, failed, rejected, answered, refused)."""

    task: str
    input: dict
    step: int
    messages: list[dict]
    tools: list[Tool]
    results: list[dict]
    system_prompt: str = ""

    @property
    def last(self) -> dict | None:
        return self.results[-1] if self.results else None

    def results_for(self, tool: str) -> list[dict]:
        return [r for r in self.results if r["tool"] == tool]


class Planner(Protocol):
    def plan(self, view: PlanView) -> Plan: ...


class PlannerError(Exception):
    """The planner could not produce a next move (endpoint down, nonsense reply)."""


class ScriptedPlanner:
    def __init__(self, script: Callable[[PlanView], Plan]):
        self.script = script

    def plan(self, view: PlanView) -> Plan:
        return self.script(view)


class LLMPlanner:
    """One chat-completions call per turn; tool calls in the reply become the turn's calls,
    a reply without tool calls is the final answer."""

    RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        retries: int = 3,
        temperature: float = 0.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = (base_url or settings.HITL_LLM_BASE_URL).rstrip("/")
        self.model = model or settings.HITL_LLM_MODEL
        self.api_key = api_key if api_key is not None else settings.HITL_LLM_API_KEY
        self.timeout = timeout or settings.HITL_LLM_TIMEOUT
        self.retries = retries
        self.temperature = temperature
        self.transport = transport
        if not self.base_url or not self.model:
            raise PlannerError(
                "the LLM planner needs HITL_LLM_BASE_URL and HITL_LLM_MODEL "
                "(or the agent's config llm_base_url / llm_model)"
            )

    def request_body(self, view: PlanView) -> dict:
        user = view.task
        if view.input:
            user += "\n\nInput:\n" + json.dumps(view.input, indent=2, sort_keys=True)
        messages = [
            {"role": "system", "content": view.system_prompt},
            {"role": "user", "content": user},
            *view.messages,
        ]
        return {
            "model": self.model,
            "messages": messages,
            "tools": [t.spec() for t in view.tools],
            "tool_choice": "auto",
            "temperature": self.temperature,
        }

    def plan(self, view: PlanView) -> Plan:
        reply = self._post(self.request_body(view))
        try:
            message = reply["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise PlannerError(f"unexpected chat-completions reply: {str(reply)[:300]}") from None
        calls = []
        for i, raw in enumerate(message.get("tool_calls") or []):
            fn = raw.get("function") or {}
            call_id = raw.get("id") or f"call_{view.step}_{i}"
            try:
                args = json.loads(fn.get("arguments") or "{}")
                calls.append(ToolCall(fn.get("name", ""), args, call_id))
            except json.JSONDecodeError as exc:
                calls.append(
                    ToolCall(fn.get("name", ""), None, call_id, f"arguments are not JSON: {exc}")
                )
        content = message.get("content") or ""
        if calls:
            return Plan(calls=calls, thought=content)
        return Plan(final=content or "(the model finished without a message)")

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        last = ""
        with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
            for attempt in range(self.retries):
                if attempt:
                    time.sleep(min(0.5 * 2 ** (attempt - 1), 4))
                try:
                    resp = client.post(url, json=body, headers=headers)
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                    continue
                if resp.status_code in self.RETRY_STATUS:
                    last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    continue
                if resp.status_code >= 400:
                    raise PlannerError(
                        f"LLM endpoint {url} answered HTTP {resp.status_code}: {resp.text[:300]}"
                    )
                try:
                    return resp.json()
                except ValueError:
                    raise PlannerError(f"LLM endpoint {url} did not answer JSON") from None
        raise PlannerError(f"LLM endpoint {url} failed after {self.retries} attempts: {last}")
