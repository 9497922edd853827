"""The LLM planner against a fake OpenAI-compatible server on 127.0.0.1 (port range 8300-8399)."""

from __future__ import annotations

import json

import pytest

from agents.models import Run
from agents.runtime.agent import ask_human
from agents.runtime.planners import LLMPlanner, PlannerError, PlanView
from approvals.transitions import checkpoint_decide
from tests.api.live import free_port
from tests.hosted.agents import ledger_lines, transfer
from tests.hosted.fake_llm import FakeLLM, tool_call

PORT = free_port()  # one the OS says is free: other test runs on this machine use fixed ones


@pytest.fixture
def llm_settings(settings):
    settings.HITL_LLM_BASE_URL = f"http://127.0.0.1:{PORT}/v1"
    settings.HITL_LLM_MODEL = "tiny-test-model"
    settings.HITL_LLM_API_KEY = "sk-test"
    return settings


def test_it_drives_a_run_through_a_rejection_and_an_alternative(
    llm_settings, ledger_agent, start, inline, reviewer, sandbox
):
    replies = [
        {**tool_call("transfer", {"amount": 100, "to": "acme"}), "content": "Sending the money."},
        tool_call("transfer", {"amount": 100, "to": "acme-ltd"}, "call_2"),
        {"content": "Sent 100 to acme-ltd after acme was rejected."},
    ]
    with FakeLLM(PORT, replies) as llm:
        agent = ledger_agent([], planner="llm")
        run = start(agent, "Pay the invoice of ACME", {"invoice": 17})
        cp = run.checkpoints.get()
        assert cp.action == {"tool": "transfer", "args": {"amount": 100, "to": "acme"}}
        assert cp.context["reasoning"] == "Sending the money."

        inline(checkpoint_decide, cp.pk, reviewer, "reject", comment="the account is acme-ltd")
        second = run.checkpoints.get(status="pending")
        inline(checkpoint_decide, second.pk, reviewer, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert run.result["summary"] == "Sent 100 to acme-ltd after acme was rejected."
    assert [line.split(" ", 1)[1] for line in ledger_lines(sandbox / "ledger.txt")] == [
        "transfer 100 acme-ltd"
    ]
    first, after_reject, final = llm.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["Authorization"] == "Bearer sk-test"
    body = first["body"]
    assert body["model"] == "tiny-test-model"
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][1] == {
        "role": "user",
        "content": 'Pay the invoice of ACME\n\nInput:\n{\n  "invoice": 17\n}',
    }
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == ["note", "transfer", "tag_files", "ask_human"]
    # the planner learns why it was rejected, tied to its own call id
    rejected = after_reject["body"]["messages"][-1]
    assert rejected["role"] == "tool" and rejected["tool_call_id"] == "call_1"
    assert json.loads(rejected["content"]) == {
        "status": "rejected",
        "reason": "rejected by rita: the account is acme-ltd",
    }
    executed = json.loads(final["body"]["messages"][-1]["content"])
    assert executed["status"] == "executed" and executed["approved_by"] == "rita"


def test_it_retries_a_busy_endpoint_then_fails_the_run_with_the_reason(
    llm_settings, ledger_agent, start
):
    with FakeLLM(PORT, [503, 503, 503]) as llm:
        run = start(ledger_agent([], planner="llm"))
    assert len(llm.requests) == 3
    assert run.status == Run.Status.FAILED
    assert "failed after 3 attempts: HTTP 503" in run.error


def test_it_reports_arguments_that_are_not_json(llm_settings, ledger_agent, start):
    broken = {
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "note", "arguments": "{oops"}}
        ],
    }
    with FakeLLM(PORT, [broken, {"content": "gave up"}]) as llm:
        run = start(ledger_agent([], planner="llm"))
    assert run.status == Run.Status.COMPLETED
    assert "arguments are not JSON" in run.result["not_done"][0]["why"]
    assert "arguments are not JSON" in llm.requests[1]["body"]["messages"][-1]["content"]


def test_it_needs_an_endpoint(settings):
    settings.HITL_LLM_BASE_URL = ""
    with pytest.raises(PlannerError, match="HITL_LLM_BASE_URL"):
        LLMPlanner()


def test_it_describes_tools_from_their_signatures():
    spec = transfer.spec()["function"]
    assert spec["name"] == "transfer"
    assert spec["description"] == "Move money."
    assert spec["parameters"] == {
        "type": "object",
        "properties": {
            "amount": {"type": "integer", "description": "how much, in cents"},
            "to": {"type": "string", "description": "the receiving account"},
        },
        "required": ["amount", "to"],
        "additionalProperties": False,
    }
    options = ask_human.parameters["properties"]["options"]
    assert options["type"] == ["array", "null"] and options["items"] == {"type": "string"}


def test_it_builds_the_request_from_the_view():
    view = PlanView(
        task="t",
        input={},
        step=0,
        messages=[],
        tools=[transfer],
        results=[],
        system_prompt="be careful",
    )
    body = LLMPlanner(base_url="http://127.0.0.1:8312/v1", model="m").request_body(view)
    assert body["messages"] == [
        {"role": "system", "content": "be careful"},
        {"role": "user", "content": "t"},
    ]
    assert body["tool_choice"] == "auto" and body["temperature"] == 0.0
