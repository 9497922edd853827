"""The MCP approval server with the official `mcp` SDK's own clients: `hitl mcp` over stdio
(started by `stdio_client` as a host would) and `/mcp` on a live portal (streamable HTTP,
agent key as bearer), each with the initialize handshake and with auto-negotiation."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from approvals.models import Checkpoint
from tests.code import pythonpath
from tests.integrations.helpers import decide, run_in_thread, wait_for_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def stdio_params(portal, key) -> StdioServerParameters:
    # Hosts pass only a default environment plus "env": both variables must be listed.
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "hitl_client.cli", "mcp"],
        env={"HITL_URL": portal.url, "HITL_API_KEY": key, "PYTHONPATH": pythonpath()},
        cwd=str(ROOT),
    )


def http_client(portal, key) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120)


async def handshake_session(transport, body):
    async with transport as streams, ClientSession(streams[0], streams[1]) as session:
        init = await session.initialize()
        return init, await body(session)


async def orm(fn, *args, **kwargs):
    """Database work from async test code runs in a thread (Django refuses it in the loop)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def structured(result) -> dict:
    assert not result.is_error, result.content
    data = result.structured_content
    assert data is not None and result.content[0].type == "text"
    return data


async def approve_flow(session, portal, reviewer) -> list[dict]:
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) >= {"request_approval", "ask_human", "check_status"}
    schema = tools["request_approval"].input_schema
    assert {"title", "tool", "args"} <= set(schema["required"])
    assert schema["properties"]["args"]["type"] == "object"
    assert tools["request_approval"].output_schema is not None

    first = structured(
        await session.call_tool(
            "request_approval",
            {
                "title": "Delete old logs",
                "tool": "delete_files",
                "args": {"paths": ["/var/log/a.log"], "older_than_days": 30, "dry_run": True},
                "risk": "high",
                "reasoning": ["disk 95%"],
                "wait_seconds": 0,
            },
        )
    )
    assert first["status"] == "pending" and first["approved"] is False
    cp = await orm(Checkpoint.objects.get, pk=first["checkpoint_id"])
    assert cp.context == {"source": "mcp", "reasoning": ["disk 95%"]} and cp.risk == "high"

    def edit_later():
        time.sleep(0.5)  # while check_status waits
        decide(
            portal,
            reviewer,
            cp,
            "modify",
            args={"paths": ["/var/log/a.log"], "older_than_days": 90, "dry_run": False},
        )

    reviewer_edit = run_in_thread(edit_later)
    decided = structured(
        await session.call_tool(
            "check_status", {"checkpoint_id": first["checkpoint_id"], "wait_seconds": 20}
        )
    )
    reviewer_edit.get()
    rejected = structured(
        await session.call_tool(
            "request_approval",
            {
                "title": "Drop table",
                "tool": "sql",
                "args": {"sql": "DROP TABLE t"},
                "wait_seconds": 0,
            },
        )
    )
    rejected_cp = await orm(Checkpoint.objects.get, pk=rejected["checkpoint_id"])
    await orm(decide, portal, reviewer, rejected_cp, "reject", comment="use the staging DB")
    rejected = structured(
        await session.call_tool("check_status", {"checkpoint_id": rejected["checkpoint_id"]})
    )
    unknown = await session.call_tool(
        "check_status", {"checkpoint_id": "00000000-0000-0000-0000-000000000000", "wait_seconds": 0}
    )
    assert unknown.is_error and "No request" in unknown.content[0].text
    garbage = await session.call_tool("check_status", {"checkpoint_id": "nope", "wait_seconds": 0})
    assert garbage.is_error
    return [decided, rejected]


def check_results(decided: dict, rejected: dict) -> None:
    assert decided["status"] == "approved" and decided["approved"] is True
    assert decided["outcome"] == "modify" and decided["decided_by"] == "rita"
    # The reviewer's edit, JSON types intact.
    assert decided["args"] == {"paths": ["/var/log/a.log"], "older_than_days": 90, "dry_run": False}
    assert rejected["status"] == "rejected" and rejected["approved"] is False
    assert rejected["args"] is None and rejected["reason"] == "use the staging DB"


def test_stdio_with_the_handshake(live_portal, agent_key, reviewer):
    async def main():
        return await handshake_session(
            stdio_client(stdio_params(live_portal, agent_key)),
            lambda s: approve_flow(s, live_portal, reviewer),
        )

    init, (decided, rejected) = asyncio.run(main())
    assert init.server_info.name == "hitl-portal"
    check_results(decided, rejected)
    # One MCP session is one run.
    assert Checkpoint.objects.values("run").distinct().count() == 1


def test_stdio_with_auto_negotiation_and_a_question(live_portal, agent_key, reviewer):
    async def main():
        async with Client(stdio_params(live_portal, agent_key)) as client:
            pending = await client.call_tool(
                "ask_human",
                {
                    "question": "Which region?",
                    "options": ["eu-west-1", "us-east-1"],
                    "wait_seconds": 0,
                },
            )
            cp = await orm(Checkpoint.objects.get, pk=pending.structured_content["checkpoint_id"])
            await asyncio.to_thread(decide, live_portal, reviewer, cp, "answer", answer="eu-west-1")
            return await client.call_tool("check_status", {"checkpoint_id": str(cp.pk)})

    answered = structured(asyncio.run(main()))
    assert (answered["status"], answered["answer"]) == ("answered", "eu-west-1")


def test_http_with_the_handshake_and_auto(live_portal, agent_key, reviewer):
    url = f"{live_portal.url}/mcp"

    async def handshake():
        return await handshake_session(
            streamable_http_client(url, http_client=http_client(live_portal, agent_key)),
            lambda s: approve_flow(s, live_portal, reviewer),
        )

    init, (decided, rejected) = asyncio.run(handshake())
    assert init.protocol_version == "2025-11-25"
    check_results(decided, rejected)

    async def auto():
        transport = streamable_http_client(url, http_client=http_client(live_portal, agent_key))
        async with Client(transport) as client:
            before = await orm(lambda: list(Checkpoint.objects.values_list("pk", flat=True)))
            waiting = run_in_thread(lambda: (wait_for_checkpoint(exclude=before),))
            call = asyncio.ensure_future(
                client.call_tool(
                    "request_approval",
                    {
                        "title": "Restart web",
                        "tool": "restart",
                        "args": {"n": 1},
                        "wait_seconds": 30,
                    },
                )
            )
            (cp,) = await asyncio.to_thread(waiting.get)
            await asyncio.to_thread(decide, live_portal, reviewer, cp, "approve")
            return client.session.protocol_version, await call

    version, approved = asyncio.run(auto())
    assert version == "2026-07-28"
    approved = structured(approved)
    # Decided while the tool call was waiting: the answer came back in the same call.
    assert approved["status"] == "approved" and approved["args"] == {"n": 1}
    assert approved["outcome"] == "approve"


def test_http_refuses_missing_and_bad_keys(live_portal, agent_key):
    url = f"{live_portal.url}/mcp"
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in ({}, {"Authorization": "Bearer hitl_a_nope_nope"}):
        response = httpx.post(url, json=ping, headers={**headers, **auth})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    metadata = httpx.get(f"{live_portal.url}/.well-known/oauth-protected-resource/mcp")
    assert metadata.status_code == 200 and metadata.json()["resource"] == url
    evil = httpx.post(
        url,
        json=ping,
        headers={**headers, "Authorization": f"Bearer {agent_key}", "Host": "evil.example"},
    )
    assert evil.status_code in (400, 421)


def test_another_agents_checkpoint_is_unknown(live_portal, agent_key, make_checkpoint):
    from agents.services import AGENT_KEYS
    from audit.events import Actor
    from tests.factories import AgentFactory

    theirs = AgentFactory(slug="them")
    their_key = AGENT_KEYS.create(theirs, Actor.system("test"))
    mine = make_checkpoint()

    async def main():
        transport = streamable_http_client(
            f"{live_portal.url}/mcp", http_client=http_client(live_portal, their_key)
        )
        async with Client(transport) as client:
            return await client.call_tool(
                "check_status", {"checkpoint_id": str(mine.pk), "wait_seconds": 0}
            )

    result = asyncio.run(main())
    assert result.is_error and "No request" in result.content[0].text
    assert mine.title not in result.content[0].text  # nothing about it is told
    mine.refresh_from_db()
    assert mine.status == "pending"


def test_a_withdrawn_request_ends_the_wait_not_approved(live_portal, agent_key):
    """The agent (or its run ending) withdraws a request while request_approval waits: the call
    returns `cancelled`, not approved, with no args to run and the reason."""

    def withdraw_later():
        cp = wait_for_checkpoint()
        httpx.post(
            f"{live_portal.url}/api/v1/checkpoints/{cp.pk}/cancel/",
            json={"reason": "the user closed the chat"},
            headers={"Authorization": f"Bearer {agent_key}"},
        ).raise_for_status()

    async def main():
        transport = streamable_http_client(
            f"{live_portal.url}/mcp", http_client=http_client(live_portal, agent_key)
        )
        async with Client(transport) as client:
            withdrawn = run_in_thread(withdraw_later)
            result = await client.call_tool(
                "request_approval",
                {"title": "Wipe", "tool": "wipe", "args": {"disk": "sda"}, "wait_seconds": 30},
            )
            await asyncio.to_thread(withdrawn.get)
            again = await client.call_tool(
                "check_status", {"checkpoint_id": result.structured_content["checkpoint_id"]}
            )
            return result, again

    result, again = asyncio.run(main())
    for answer in (structured(result), structured(again)):
        assert answer["status"] == "cancelled" and answer["outcome"] == "cancelled"
        assert answer["approved"] is False and answer["args"] is None
        assert answer["reason"] == "the user closed the chat"
    assert Checkpoint.objects.get().status == "cancelled"


def outage_params(portal, key) -> StdioServerParameters:
    # A short outage budget for creates, so that each failing call answers within seconds.
    params = stdio_params(portal, key)
    params.args = ["-m", "hitl_client.cli", "--outage-timeout", "1", "mcp"]
    return params


def tool_error(result) -> str:
    assert result.is_error, result
    (content,) = result.content
    return content.text


def test_stdio_tells_the_model_why_the_portal_failed_and_that_it_may_retry(agent_key, tmp_path):
    """The portal's database goes down, then the portal itself: every tool answers an error
    the model can read, naming the cause, saying the action must not run and how to retry;
    a request retried once the database is back asks once."""
    from tests.api.live import LivePortal
    from tests.outage import DatabaseOutage

    outage = DatabaseOutage(tmp_path)
    portal = LivePortal(DATABASE_URL=outage.url).start()
    asking = {"title": "Wipe", "tool": "wipe", "args": {"disk": "sda"}, "wait_seconds": 0}

    async def main():
        async with Client(outage_params(portal, agent_key)) as client:
            first = await client.call_tool("request_approval", {**asking, "title": "First"})
            cp_id = structured(first)["checkpoint_id"]
            outage.down()
            try:
                database = [
                    await client.call_tool(
                        "check_status", {"checkpoint_id": cp_id, "wait_seconds": 0}
                    ),
                    await client.call_tool("request_approval", asking),
                ]
            finally:
                outage.up()
            nothing_new = await orm(lambda: list(Checkpoint.objects.values_list("title")))
            asked = structured(await client.call_tool("request_approval", asking))
            waiting = asyncio.ensure_future(
                client.call_tool("check_status", {"checkpoint_id": cp_id, "wait_seconds": 30})
            )
            await asyncio.sleep(1)  # the long-poll is under way
            await asyncio.to_thread(portal.stop)
            down = [
                await waiting,
                await client.call_tool("check_status", {"checkpoint_id": cp_id}),
                await client.call_tool("ask_human", {"question": "Which disk?"}),
            ]
            return cp_id, database, nothing_new, asked, down

    try:
        cp_id, database, nothing_new, asked, down = asyncio.run(main())
    finally:
        outage.up()
        portal.stop()
        portal.wait_for_sessions_to_close()

    status, create = (tool_error(result) for result in database)
    assert "database is unavailable (503 database_unavailable" in status
    assert f"Could not check on {cp_id!r}" in status and "call check_status again" in status
    assert "Nothing was asked" in create and "database is unavailable (503" in create
    assert "call request_approval again with the same arguments" in create
    assert nothing_new == [("First",)]
    assert asked["status"] == "pending"  # asked again once the database was back: once
    assert Checkpoint.objects.filter(title="Wipe").count() == 1

    lost_wait, status, question = (tool_error(result) for result in down)
    unreachable = f"the approval portal at {portal.url} is unreachable"
    assert f"Your request is checkpoint {cp_id}" in lost_wait and unreachable in lost_wait
    assert f"call check_status with checkpoint_id {cp_id!r}" in lost_wait
    assert f"Could not check on {cp_id!r}" in status and unreachable in status
    assert "Nothing was asked" in question and unreachable in question
    for result in (*database, *down):
        text = tool_error(result)
        assert "Do not go ahead without an approval" in text and "likely temporary" in text
    assert Checkpoint.objects.count() == 2


def test_stdio_tells_the_model_a_refused_key_will_not_work_on_retry(live_portal):
    async def main():
        async with Client(outage_params(live_portal, "hitl_a_nope_nope")) as client:
            return await client.call_tool("request_approval", {
                "title": "Wipe", "tool": "wipe", "args": {"disk": "sda"}, "wait_seconds": 0
            })  # fmt: skip

    text = tool_error(asyncio.run(main()))
    assert "refused this MCP server's API key (401" in text and "HITL_API_KEY" in text
    assert "Retrying will not help" in text
    assert not Checkpoint.objects.exists()


@pytest.mark.postgres  # (SQLite: the portal's database threads keep their open file)
def test_http_tells_the_model_the_database_is_unavailable(agent_key, tmp_path):
    """`/mcp` over HTTP while the portal's database is down: a tool answers a readable error
    (the cause, that nothing was asked, how to retry); a new request's key cannot be checked:
    a 503 problem, never a 500. Once it is back, the same session asks once."""
    from agents.models import Agent
    from agents.services import AGENT_KEYS
    from audit.events import Actor
    from tests.api.live import LivePortal
    from tests.outage import DatabaseOutage

    outage = DatabaseOutage(tmp_path)
    portal = LivePortal(DATABASE_URL=outage.url).start()
    asking = {"title": "Wipe", "tool": "wipe", "args": {"disk": "sda"}, "wait_seconds": 0}
    # A key the portal has not seen yet: checking it needs the database.
    unseen = AGENT_KEYS.create(Agent.objects.get(), Actor.system("test"))

    async def main():
        transport = streamable_http_client(
            f"{portal.url}/mcp", http_client=http_client(portal, agent_key)
        )
        async with Client(transport) as client:
            first = structured(await client.call_tool("request_approval", asking))
            outage.down()
            try:
                raw = await asyncio.to_thread(
                    httpx.post,
                    f"{portal.url}/mcp",
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={
                        "Authorization": f"Bearer {unseen}",
                        "Accept": "application/json, text/event-stream",
                    },
                )
                failed = None
                try:
                    failed = await client.call_tool(
                        "check_status", {"checkpoint_id": first["checkpoint_id"]}
                    )
                except Exception as exc:  # the host's transport saw the 503
                    failed = exc
            finally:
                outage.up()
            again = structured(
                await client.call_tool("check_status", {"checkpoint_id": first["checkpoint_id"]})
            )
            return raw, failed, again

    try:
        raw, failed, again = asyncio.run(main())
    finally:
        outage.up()
        portal.stop()
        portal.wait_for_sessions_to_close()
    assert raw.status_code == 503, raw.text
    assert raw.json()["code"] == "database_unavailable" and raw.headers["retry-after"] == "5"
    if not isinstance(failed, Exception):
        assert "database is unavailable" in tool_error(failed)
    assert "Error executing tool" not in str(failed)
    assert again["status"] == "pending"
    assert Checkpoint.objects.count() == 1
