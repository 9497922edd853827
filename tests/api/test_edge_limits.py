"""Every edge an agent asks through — the REST API, HumanLayer, MCP over HTTP — takes requests
within the same limits (HITL_API_MAX_BODY_BYTES, HITL_API_MAX_JSON_DEPTH) and refuses a label
(a title, a tool, a name) with a line break or another control character, naming the field
(Slack's endpoint: tests/notifications/test_slack_hostile.py). Through a live portal's port,
as agents send them; a refused request creates nothing."""

from __future__ import annotations

import asyncio
import json

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agents.models import Run
from approvals.models import Checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MB = 1024 * 1024
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def nothing_created() -> None:
    assert not Checkpoint.objects.exists()
    assert not Run.objects.filter(external_id__startswith="mcp:").exists()


def rest_ask(portal, key: str, **fields) -> httpx.Response:
    run = httpx.post(f"{portal.url}/api/v1/runs/", json={"task": "t"}, headers=auth(key)).json()
    body = {"run": run["id"], "title": "Deploy", "action": {"tool": "deploy", "args": {}}, **fields}
    return httpx.post(f"{portal.url}/api/v1/checkpoints/", json=body, headers=auth(key), timeout=60)


def humanlayer_call(portal, key: str, **spec) -> httpx.Response:
    body = {
        "run_id": "r1",
        "call_id": "call-1",
        "spec": {"fn": "deploy", "kwargs": {}, **spec},
        "status": None,
    }
    return httpx.post(
        f"{portal.url}/humanlayer/v1/function_calls", json=body, headers=auth(key), timeout=60
    )


def mcp_tool(portal, key: str, name: str, arguments: dict):
    """One tool call with the `mcp` SDK's own client over streamable HTTP."""

    async def main():
        http = httpx2.AsyncClient(headers=auth(key), timeout=120)
        async with Client(streamable_http_client(f"{portal.url}/mcp", http_client=http)) as c:
            return await c.call_tool(name, arguments)

    return asyncio.run(main())


def approval(title: str = "Deploy", tool: str = "deploy", args: dict | None = None) -> dict:
    return {"title": title, "tool": tool, "args": args or {}, "wait_seconds": 0}


# --- size and depth ---------------------------------------------------------------------------


def test_mcp_refuses_a_body_over_the_apis_limit_with_413(live_portal, agent_key):
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "request_approval", "arguments": approval(args={"blob": "x" * 3 * MB})},
    }
    response = httpx.post(
        f"{live_portal.url}/mcp",
        content=json.dumps(call).encode(),
        headers={**MCP_HEADERS, **auth(agent_key), "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    nothing_created()
    # Chunked (no Content-Length): counted as it arrives.
    chunks = iter([json.dumps(call).encode()[i : i + MB] for i in range(0, 4 * MB, MB)])
    response = httpx.post(
        f"{live_portal.url}/mcp",
        content=chunks,
        headers={**MCP_HEADERS, **auth(agent_key), "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413, response.text[:300]
    nothing_created()


def test_mcp_answers_a_hostile_body_with_a_4xx(live_portal, agent_key):
    headers = {**MCP_HEADERS, **auth(agent_key), "Content-Type": "application/json"}
    for body in [b"[" * 500_000 + b"]" * 500_000, b"\xff\xfe", b'{"jsonrpc": "2.0", "id": NaN}']:
        response = httpx.post(f"{live_portal.url}/mcp", content=body, headers=headers, timeout=60)
        assert 400 <= response.status_code < 500, (
            body[:20],
            response.status_code,
            response.text[:200],
        )
    nothing_created()


def test_every_edge_refuses_40_levels_of_nesting(live_portal, agent_key):
    deep = nested(40)
    result = mcp_tool(live_portal, agent_key, "request_approval", approval(args=deep))
    assert result.is_error
    assert "nested deeper than 32 levels" in result.content[0].text, result.content[0].text
    nothing_created()
    response = rest_ask(live_portal, agent_key, action={"tool": "deploy", "args": deep})
    assert response.status_code == 400 and "nested deeper" in response.json()["detail"]
    response = humanlayer_call(live_portal, agent_key, kwargs=deep)
    assert response.status_code == 400 and "nested deeper" in response.json()["detail"]
    assert not Checkpoint.objects.exists()


def test_every_edge_takes_the_same_large_request(live_portal, agent_key):
    """1.2 MB of arguments is within the limit on every edge (HumanLayer's spec is stored
    once, not twice)."""
    args = {"blob": "x" * 1_200_000}
    assert (
        rest_ask(live_portal, agent_key, action={"tool": "deploy", "args": args}).status_code == 201
    )
    assert humanlayer_call(live_portal, agent_key, kwargs=args).status_code == 201
    result = mcp_tool(live_portal, agent_key, "request_approval", approval(args=args))
    assert not result.is_error, result.content[0].text
    assert Checkpoint.objects.count() == 3
    echoed = httpx.get(
        f"{live_portal.url}/humanlayer/v1/function_calls/call-1", headers=auth(agent_key)
    ).json()
    assert echoed["spec"]["kwargs"] == args and echoed["spec"]["fn"] == "deploy"


# --- single-line labels -------------------------------------------------------------------------

TITLE = "Deploy\r\nBcc: everyone@example.com"


@pytest.mark.parametrize(
    "fields, errors",
    [
        ({"title": TITLE}, {"title"}),
        ({"title": "Deploy\u2028now"}, {"title"}),
        ({"title": "Deploy \x1b[2Jnow"}, {"title"}),
        ({"action": {"tool": "rm\n-rf", "args": {}}}, {"action"}),
        ({"role_hint": "ops\r\nadmin"}, {"role_hint"}),
        ({"external_id": "id\x85x"}, {"external_id"}),
        ({"kind": "question", "options": ["yes\nno"]}, {"options"}),
        ({"kind": "question", "options": [{"value": "y", "label": "Yes\rNo"}]}, {"options"}),
        ({"reject_options": [{"value": "r", "label": "Too\nrisky"}]}, {"reject_options"}),
    ],
    ids=["crlf-title", "line-separator", "escape", "tool", "role-hint", "nel-external-id",
         "option", "option-label", "reject-option-label"],
)  # fmt: skip
def test_the_rest_api_refuses_multi_line_labels(live_portal, agent_key, fields, errors):
    response = rest_ask(live_portal, agent_key, **fields)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert set(problem["errors"]) == errors
    assert "single line" in json.dumps(problem["errors"])
    assert not Checkpoint.objects.exists()


def test_humanlayer_refuses_multi_line_labels(live_portal, agent_key):
    response = humanlayer_call(live_portal, agent_key, fn="send\r\nBcc: x")
    assert response.status_code == 400 and set(response.json()["errors"]["spec"]) == {"fn"}
    contact = {
        "run_id": "r1",
        "call_id": "call-2",
        "spec": {"msg": "Which region?", "subject": TITLE},
        "status": None,
    }
    response = httpx.post(
        f"{live_portal.url}/humanlayer/v1/contact_requests", json=contact, headers=auth(agent_key)
    )
    assert response.status_code == 400 and set(response.json()["errors"]["spec"]) == {"subject"}
    response = httpx.post(
        f"{live_portal.url}/humanlayer/v1/function_calls",
        json={"run_id": "r\n1", "call_id": "call-3", "spec": {"fn": "f", "kwargs": {}}},
        headers=auth(agent_key),
    )
    assert response.status_code == 400 and set(response.json()["errors"]) == {"run_id"}
    assert not Checkpoint.objects.exists()
    # A title the portal derives (a message's first line, a call's arguments) is one line.
    contact["spec"] = {"msg": "Which\tregion?\nEU or US"}
    assert httpx.post(
        f"{live_portal.url}/humanlayer/v1/contact_requests", json=contact, headers=auth(agent_key)
    ).status_code == 201  # fmt: skip
    weird = humanlayer_call(live_portal, agent_key, kwargs={"to\r\nBcc": "x"})
    assert weird.status_code == 201, weird.text
    assert sorted(Checkpoint.objects.values_list("title", flat=True)) == [
        "Which region?",
        'deploy(to Bcc="x")',
    ]


def test_mcp_refuses_a_multi_line_title_and_tool(live_portal, agent_key):
    for arguments, field in [
        (approval(title=TITLE), "title"),
        (approval(tool="deploy\nnow"), "tool"),
    ]:
        result = mcp_tool(live_portal, agent_key, "request_approval", arguments)
        assert result.is_error, result
        text = result.content[0].text
        assert field in text and "single line" in text, text
    nothing_created()
    # ask_human's title is the question's first line: asked, on one line.
    result = mcp_tool(
        live_portal,
        agent_key,
        "ask_human",
        {"question": "Which\tregion?\nEU or US", "wait_seconds": 0},
    )
    assert not result.is_error, result.content[0].text
    assert Checkpoint.objects.get().title == "Which region?"
