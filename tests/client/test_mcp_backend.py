"""`hitl mcp`'s backend without a portal: a create whose answer an outage lost is sent again
with its Idempotency-Key when the model retries it (the portal replays it: one checkpoint),
and every failure that is not the request's becomes a message naming its cause."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from hitl_client import ApiError, HitlClient, HitlError
from hitl_client.mcp import ClientBackend, PortalUnavailable, RequestRefused


class LosingPortal(HitlClient):
    """Answers `arequest` from a script of answers or exceptions; records (path, key)."""

    def __init__(self, answers: list):
        super().__init__("http://portal.invalid", "hitl_test")
        self.answers = iter(answers)
        self.sent: list[tuple[str, str | None]] = []

    async def arequest(self, method: str, path: str, **kwargs: Any) -> Any:
        self.sent.append((path, (kwargs.get("headers") or {}).get("Idempotency-Key")))
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


def lost(path: str) -> HitlError:
    error = HitlError(f"POST {path}: timed out")
    error.__cause__ = httpx.ReadTimeout("timed out")
    return error


BODY = {"kind": "approval", "title": "Wipe", "action": {"tool": "wipe", "args": {"disk": "a"}}}


def ask(backend: ClientBackend, body: dict = BODY) -> Any:
    try:
        return asyncio.run(backend.request_approval(body, "host"))
    except (PortalUnavailable, RequestRefused) as exc:
        return exc


def test_a_create_retried_after_a_lost_answer_reuses_its_key_and_a_new_one_does_not():
    run = {"id": "run-1", "status": "running"}
    cp = {"id": "cp-1", "status": "pending"}
    portal = LosingPortal([lost("runs/"), run, lost("checkpoints/"), cp, cp, cp])
    backend = ClientBackend(portal)
    failed = ask(backend)
    assert isinstance(failed, PortalUnavailable) and failed.retryable
    assert "unreachable (timed out)" in failed.cause
    failed = ask(backend)  # the run now; the checkpoint's answer lost
    assert isinstance(failed, PortalUnavailable)
    assert ask(backend) == cp  # the model asks again: the same key, replayed by the portal
    assert ask(backend) == cp  # and once more after it got through: a new request
    assert ask(backend, {**BODY, "title": "Other"}) == cp
    runs = [key for path, key in portal.sent if path == "runs/"]
    assert len(runs) == 2 and runs[0] == runs[1] and runs[0].startswith("mcp-session:")
    keys = [key for path, key in portal.sent if path == "checkpoints/"]
    assert len(keys) == 4 and keys[0] == keys[1] and len(set(keys[1:])) == 3


@pytest.mark.parametrize(
    ("error", "cause", "retryable"),
    [
        (
            ApiError(503, {"code": "database_unavailable", "detail": "The database is down."}),
            "the approval portal's database is unavailable (503 database_unavailable: The "
            "database is down.)",
            True,
        ),
        (ApiError(502, None, "Bad Gateway"), "the approval portal failed (502: Bad Gateway)", True),
        (
            ApiError(429, {"code": "throttled", "detail": "Slow down."}),
            "the approval portal is rate-limiting this agent (429 throttled: Slow down.)",
            True,
        ),
        (
            ApiError(401, {"code": "not_authenticated", "detail": "Invalid key."}),
            "the approval portal refused this MCP server's API key (401 not_authenticated: "
            "Invalid key.): it is missing, wrong or revoked; the user must fix HITL_API_KEY in "
            "this server's configuration",
            False,
        ),
        (
            ApiError(423, {"code": "agent_halted", "detail": "Halted by ann: audit."}),
            "this agent is halted in the approval portal (423 agent_halted: Halted by ann: audit.)",
            False,
        ),
    ],
)
def test_each_failure_that_is_not_the_requests_names_its_cause(error, cause, retryable):
    portal = LosingPortal([{"id": "run-1"}, error])
    failed = ask(ClientBackend(portal))
    assert isinstance(failed, PortalUnavailable)
    assert (failed.cause, failed.retryable) == (cause, retryable)


def test_a_refusal_of_the_request_itself_stays_a_refusal():
    error = ApiError(400, {"detail": "Invalid input.", "errors": {"title": ["Too long."]}})
    failed = ask(ClientBackend(LosingPortal([{"id": "run-1"}, error])))
    assert isinstance(failed, RequestRefused)
    assert str(failed) == "Invalid input. {'title': ['Too long.']}"
