"""`hitl_client.pydantic_ai` with real pydantic-ai (a `FunctionModel` scripts the LLM; the
agent loop, deferred tools and message serialization are pydantic-ai's) against a live portal."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent, CallDeferred, DeferredToolRequests
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from approvals.models import Artifact, Checkpoint
from approvals.transitions import checkpoint_expire
from hitl_client import HitlClient
from hitl_client.errors import HitlError
from hitl_client.pydantic_ai import resume_results, submit_deferred
from tests.integrations.helpers import decide

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXECUTED: list[tuple] = []
SCHEMAS: dict[str, dict] = {}
SEEN: list[dict] = []


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    SCHEMAS.update({t.name: t.parameters_json_schema for t in info.function_tools})
    returns = [
        p for p in messages[-1].parts if isinstance(p, ToolReturnPart)
    ]  # the tools' results, and what reviewers said instead
    if returns:
        SEEN.append({p.tool_call_id: p.model_response_str() for p in returns})
        return ModelResponse(parts=[TextPart("done")])
    return ModelResponse(
        parts=[
            ToolCallPart("delete_files", {"paths": ["/tmp/a"], "older_than_days": 30}, "call_del"),
            ToolCallPart("restart", {"service": "web"}, "call_rst"),
            ToolCallPart("ask_user", {"question": "Which region?"}, "call_ask"),
        ]
    )


def build_agent() -> Agent:
    agent = Agent(FunctionModel(scripted), output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def delete_files(paths: list[str], older_than_days: int) -> str:
        """Delete old files."""
        EXECUTED.append(("delete_files", paths, older_than_days))
        return f"deleted {len(paths)}"

    @agent.tool_plain(requires_approval=True)
    def restart(service: str) -> str:
        """Restart a service."""
        EXECUTED.append(("restart", service))
        return "restarted"

    @agent.tool_plain
    def ask_user(question: str) -> str:
        """Ask the user."""
        raise CallDeferred(kind="question")

    return agent


@pytest.fixture
def client(live_portal, agent_key):
    EXECUTED.clear()
    SEEN.clear()
    return HitlClient(live_portal.url, agent_key)


def pause(client):
    agent = build_agent()
    result = agent.run_sync("clean up")
    assert isinstance(result.output, DeferredToolRequests)
    cps = submit_deferred(
        client, result.output, result.all_messages(), agent=agent, run_external_id="c-1"
    )
    again = submit_deferred(client, result.output, result.all_messages(), agent=agent)
    assert [c.id for c in again] == [c.id for c in cps]
    return cps


def test_edits_denials_and_answers_continue_the_run(client, live_portal, reviewer):
    cps = pause(client)
    delete, rst, ask = (Checkpoint.objects.get(pk=c.id) for c in cps)
    assert (delete.kind, ask.kind, ask.title) == ("approval", "question", "Which region?")
    # The schema read from the agent is the one its model was shown.
    assert delete.action["args_schema"] == SCHEMAS["delete_files"]
    assert Artifact.objects.get(checkpoint=delete).name == "message_history.json"
    refused = decide(
        live_portal,
        reviewer,
        delete,
        "modify",
        expect=400,
        args={"paths": "/tmp/a", "older_than_days": "90"},
    )
    assert set(refused["errors"]["action"]["args"]) == {"paths", "older_than_days"}
    decide(
        live_portal,
        reviewer,
        delete,
        "modify",
        args={"paths": ["/tmp/a", "/tmp/b"], "older_than_days": 90},
    )
    decide(live_portal, reviewer, rst, "reject", comment="not now")
    decide(live_portal, reviewer, ask, "answer", answer="eu-west-1")

    history, results = resume_results(client, cps)
    final = build_agent().run_sync(message_history=history, deferred_tool_results=results)
    assert final.output == "done"
    assert EXECUTED == [("delete_files", ["/tmp/a", "/tmp/b"], 90)]  # the edit, typed
    seen = SEEN[-1]
    assert seen["call_del"] == "deleted 2"
    assert seen["call_rst"] == "not now"
    assert seen["call_ask"] == "eu-west-1"


def test_expiry_denies_and_a_tampered_history_is_refused(client, live_portal, reviewer):
    cps = pause(client)
    delete, rst, ask = (Checkpoint.objects.get(pk=c.id) for c in cps)
    decide(live_portal, reviewer, delete, "approve")
    decide(live_portal, reviewer, ask, "reject", comment="ask someone else")
    Checkpoint.objects.filter(pk=rst.pk).update(deadline=rst.created_at)
    checkpoint_expire(rst.pk)
    history, results = resume_results(client, cps)
    build_agent().run_sync(message_history=history, deferred_tool_results=results)
    assert EXECUTED == [("delete_files", ["/tmp/a"], 30)]
    assert SEEN[-1]["call_rst"].startswith("not approved (expired): No decision")
    assert SEEN[-1]["call_ask"] == "[rejected] ask someone else"

    artifact = Artifact.objects.get(checkpoint=delete)
    Artifact.objects.filter(pk=artifact.pk).update(inline=artifact.inline.replace("clean", "wreck"))
    with pytest.raises(HitlError, match="does not match its sha256"):
        resume_results(client, cps)
