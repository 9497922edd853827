"""`hitl_client.langgraph` with real LangGraph / langchain graphs (a scripted chat model stands
in for the LLM; everything else is the packages' own code) against a live portal: interrupts
become checkpoints, reviewers decide through the portal's API, and the graph resumes with what
they decided — typed edits, reasons, answers, expiry."""

from __future__ import annotations

import uuid
from typing import TypedDict

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from approvals.models import Checkpoint
from approvals.transitions import checkpoint_expire
from hitl_client import HitlClient
from hitl_client.langgraph import resume_command, submit_interrupts
from tests.integrations.helpers import decide

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class ScriptedModel(GenericFakeChatModel):
    """The LLM, scripted: each call returns the next message. Binding tools is a no-op."""

    def bind_tools(self, tools, **kwargs):
        return self


EXECUTED: list[tuple] = []


@tool
def send_email(to: str, priority: int, urgent: bool) -> str:
    """Send an e-mail."""
    EXECUTED.append(("send_email", to, priority, urgent))
    return f"sent to {to}"


@tool
def delete_file(path: str) -> str:
    """Delete a file."""
    EXECUTED.append(("delete_file", path))
    return "deleted"


def agent(mode: str = "batched"):
    EXECUTED.clear()
    model = ScriptedModel(
        messages=iter(
            [
                AIMessage(
                    "",
                    tool_calls=[
                        {
                            "name": "send_email",
                            "args": {"to": "a@b.c", "priority": 3, "urgent": True},
                            "id": "c1",
                        },
                        {"name": "delete_file", "args": {"path": "/tmp/x"}, "id": "c2"},
                    ],
                ),
                AIMessage("done"),
            ]
        )
    )
    hitl = HumanInTheLoopMiddleware(
        interrupt_on={
            "send_email": True,
            "delete_file": {"allowed_decisions": ["approve", "reject"]},
        },
        interrupt_mode=mode,
    )
    return create_agent(
        model, [send_email, delete_file], middleware=[hitl], checkpointer=InMemorySaver()
    )


@pytest.fixture
def client(live_portal, agent_key):
    return HitlClient(live_portal.url, agent_key)


def config() -> dict:
    return {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}"}}


def test_the_middleware_resumes_with_typed_edits_and_reasons(client, live_portal, reviewer):
    graph, cfg = agent(), config()
    out = graph.invoke({"messages": [("user", "mail a@b.c, then clean up")]}, cfg, version="v2")
    cps = submit_interrupts(client, out.interrupts, thread_id=cfg["configurable"]["thread_id"])
    mail, delete = (Checkpoint.objects.get(pk=cp.id) for cp in cps)
    assert (mail.action["tool"], delete.action["tool"]) == ("send_email", "delete_file")
    assert mail.allowed_outcomes == ["approve", "modify", "answer", "reject"]
    assert set(delete.allowed_outcomes) == {"approve", "reject"}
    assert mail.context["langgraph"]["dialect"] == "hitl_request"

    # A re-run node, or another process reading the state: the same checkpoints.
    again = submit_interrupts(
        client, graph.get_state(cfg).interrupts, thread_id=cfg["configurable"]["thread_id"]
    )
    assert [c.id for c in again] == [c.id for c in cps] and Checkpoint.objects.count() == 2

    refused = decide(live_portal, reviewer, delete, "modify", args={"path": "/"}, expect=400)
    assert refused["code"] == "outcome_not_allowed"
    decide(
        live_portal,
        reviewer,
        mail,
        "modify",
        args={"to": "a@b.c", "priority": 4999, "urgent": False},
    )
    decide(live_portal, reviewer, delete, "reject", comment="keep /tmp/x for the audit")

    final = graph.invoke(
        resume_command(client, graph.get_state(cfg).interrupts, cps), cfg, version="v2"
    )
    assert EXECUTED == [("send_email", "a@b.c", 4999, False)]  # typed, as edited
    tool_messages = {
        m.tool_call_id: m for m in final.value["messages"] if isinstance(m, ToolMessage)
    }
    assert "keep /tmp/x for the audit" in tool_messages["c2"].content
    assert tool_messages["c2"].status == "error"
    assert "sent to a@b.c" in tool_messages["c1"].content
    assert final.value["messages"][-1].content == "done"


def test_a_withdrawn_request_is_a_rejection_and_its_tool_never_runs(client, live_portal, reviewer):
    graph, cfg = agent(), config()
    out = graph.invoke({"messages": [("user", "mail a@b.c, then clean up")]}, cfg, version="v2")
    mail, delete = submit_interrupts(
        client, out.interrupts, thread_id=cfg["configurable"]["thread_id"]
    )
    decide(live_portal, reviewer, Checkpoint.objects.get(pk=mail.id), "approve")
    client.cancel(delete.id, reason="the ticket was closed")

    final = graph.invoke(
        resume_command(client, graph.get_state(cfg).interrupts, [mail, delete]), cfg, version="v2"
    )
    assert EXECUTED == [("send_email", "a@b.c", 3, True)]  # delete_file never ran
    tool_messages = {
        m.tool_call_id: m for m in final.value["messages"] if isinstance(m, ToolMessage)
    }
    assert tool_messages["c2"].status == "error"
    assert "cancelled: the ticket was closed" in tool_messages["c2"].content
    assert Checkpoint.objects.get(pk=delete.id).status == "cancelled"


def test_per_call_mode_carries_the_argument_schema(client, live_portal, reviewer):
    graph, cfg = agent("per_call"), config()
    thread = cfg["configurable"]["thread_id"]
    out = graph.invoke({"messages": [("user", "go")]}, cfg, version="v2")
    cps = submit_interrupts(client, out.interrupts, thread_id=thread)
    rows = {
        Checkpoint.objects.get(pk=c.id).action["tool"]: Checkpoint.objects.get(pk=c.id) for c in cps
    }
    mail = rows["send_email"]
    assert mail.context["langgraph"]["dialect"] == "tool_approval"
    assert mail.action["args_schema"]["properties"]["priority"]["type"] == "integer"
    bad = decide(live_portal, reviewer, mail, "modify",
                 args={"to": "a@b.c", "priority": "14", "urgent": True}, expect=400)  # fmt: skip
    assert "priority" in bad["errors"]["action"]["args"]
    decide(live_portal, reviewer, mail, "approve")
    if "delete_file" in rows:
        decide(live_portal, reviewer, rows["delete_file"], "approve")
    out = graph.invoke(
        resume_command(client, graph.get_state(cfg).interrupts, cps), cfg, version="v2"
    )
    while out.interrupts:  # per-call mode may pause again for the next gated call
        more = submit_interrupts(client, out.interrupts, thread_id=thread)
        for cp in more:
            decide(live_portal, reviewer, Checkpoint.objects.get(pk=cp.id), "approve")
        out = graph.invoke(resume_command(client, out.interrupts, more), cfg, version="v2")
    assert ("send_email", "a@b.c", 3, True) in EXECUTED and ("delete_file", "/tmp/x") in EXECUTED


class State(TypedDict, total=False):
    answer: str
    responses: list


def plain_graph(payload):
    def ask(state: State) -> State:
        return {"answer": interrupt(payload)}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=InMemorySaver())


def test_a_plain_interrupt_is_a_question(client, live_portal, reviewer):
    graph, cfg = plain_graph("What is your age?"), config()
    out = graph.invoke({}, cfg, version="v2")
    (cp,) = submit_interrupts(client, out.interrupts, thread_id=cfg["configurable"]["thread_id"])
    row = Checkpoint.objects.get(pk=cp.id)
    assert (row.kind, row.title) == ("question", "What is your age?")
    decide(live_portal, reviewer, row, "answer", answer="42")
    done = graph.invoke(resume_command(client, out.interrupts, [cp]), cfg, version="v2")
    assert done.value == {"answer": "42"}


def test_agent_inbox_interrupts_and_expiry(client, live_portal, reviewer):
    request = [
        {
            "action_request": {"action": "refund", "args": {"order": 17, "amount": 25.5}},
            "config": {
                "allow_ignore": True,
                "allow_respond": False,
                "allow_edit": True,
                "allow_accept": True,
            },
            "description": "Refund order 17",
        },
        {
            "action_request": {"action": "notify", "args": {"to": "ops"}},
            "config": {
                "allow_ignore": False,
                "allow_respond": True,
                "allow_edit": False,
                "allow_accept": True,
            },
            "description": "Tell ops",
        },
    ]
    graph, cfg = plain_graph(request), config()
    out = graph.invoke({}, cfg, version="v2")
    refund, notify = submit_interrupts(
        client, out.interrupts, thread_id=cfg["configurable"]["thread_id"]
    )
    refund_row = Checkpoint.objects.get(pk=refund.id)
    assert set(refund_row.allowed_outcomes) == {"approve", "modify", "reject"}
    decide(live_portal, reviewer, refund_row, "modify", args={"order": 17, "amount": 20})
    notify_row = Checkpoint.objects.get(pk=notify.id)
    Checkpoint.objects.filter(pk=notify.id).update(deadline=notify_row.created_at)
    checkpoint_expire(notify.id)
    done = graph.invoke(resume_command(client, out.interrupts, [refund, notify]), cfg, version="v2")
    edit, response = done.value["answer"]
    assert edit == {
        "type": "edit",
        "args": {"action": "refund", "args": {"order": 17, "amount": 20}},
    }
    assert response["type"] == "response" and response["args"].startswith("expired: No decision")
