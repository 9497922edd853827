"""The client's edges, without a portal: `require_approval` treats the reviewer's edited
arguments as authoritative, and `verify_webhook` refuses every malformed signature header
with WebhookVerificationError."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hitl_client import HitlClient, WebhookVerificationError, verify_webhook
from hitl_client.models import Run
from hitl_client.webhooks import sign


class DecidedPortal(HitlClient):
    """The real client with its HTTP answered here: every checkpoint is approved at once with
    the decision's `args` (None: approved as proposed, so no action in the decision)."""

    def __init__(self, args: dict[str, Any] | None):
        super().__init__("http://portal.invalid", "hitl_test")
        self.run = Run({"id": "run-1", "status": "running"})
        self.args = args
        self.asked: list[dict] = []
        self.redeemed: list[dict] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if (method, path) == ("POST", "checkpoints/"):
            self.asked.append(kwargs["json"])
            return {"id": "cp-1", "status": "pending", "decision": None}
        if (method, path) == ("POST", "receipts/redeem/"):
            self.redeemed.append(kwargs["json"])
            return {"receipt": "r-1"}
        assert (method, path) == ("GET", "checkpoints/cp-1/wait")
        action = None if self.args is None else {"tool": "t", "args": self.args}
        decision = {"outcome": "modify", "action": action, "comment": "", "receipt": "token"}
        return {"id": "cp-1", "status": "approved", "decision": decision}

    async def arequest(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs)


def tool_for(portal: DecidedPortal, calls: list):
    @portal.require_approval
    def delete(path: str, recursive: bool = False, *, dry_run: bool = True):
        calls.append((path, recursive, dry_run))
        return "done"

    return delete


def test_it_runs_with_the_original_arguments_when_approved_as_proposed():
    calls: list = []
    portal = DecidedPortal(None)
    assert tool_for(portal, calls)("/a", True, dry_run=False) == "done"
    assert calls == [("/a", True, False)]
    # the receipt was spent on exactly the arguments that ran, before they ran
    assert portal.redeemed == [
        {
            "receipt": "token",
            "action": {
                "tool": "delete",
                "args": {"path": "/a", "recursive": True, "dry_run": False},
            },
        }
    ]


def test_it_does_not_bring_back_an_argument_the_reviewer_removed():
    calls: list = []
    portal = DecidedPortal({"path": "/a"})  # reviewer removed recursive and dry_run
    assert tool_for(portal, calls)("/a", True, dry_run=False) == "done"
    assert portal.asked[0]["action"]["args"] == {
        "path": "/a",
        "recursive": True,
        "dry_run": False,
    }
    assert calls == [("/a", False, True)]  # the defaults, not the original True / False


def test_it_does_not_run_when_the_reviewer_cleared_a_required_argument():
    calls: list = []
    delete = tool_for(DecidedPortal({}), calls)
    with pytest.raises(TypeError, match="reviewer removed the required argument 'path'"):
        delete("/etc", True)
    assert calls == []


def test_it_runs_with_defaults_when_the_reviewer_cleared_optional_arguments():
    calls: list = []
    portal = DecidedPortal({})

    @portal.require_approval
    def restart(service: str = "web", *names: str, **options: Any):
        calls.append((service, names, options))

    restart("db", "a", "b", force=True)
    assert calls == [("web", (), {})]


def test_it_maps_positional_parameters_by_name():
    calls: list = []
    portal = DecidedPortal({"src": "/a", "dst": "/c", "extra": ["x"]})

    @portal.require_approval
    def copy(src, /, dst, *extra):
        calls.append((src, dst, extra))

    copy("/a", "/b", "y")
    assert calls == [("/a", "/c", ("x",))]


def test_the_async_variant_treats_the_approved_arguments_the_same_way():
    calls: list = []
    removed, cleared = DecidedPortal({"path": "/a"}), DecidedPortal({})

    def tool(portal: DecidedPortal):
        @portal.require_approval
        async def delete(path: str, recursive: bool = False):
            calls.append((path, recursive))
            return "done"

        return delete

    assert asyncio.run(tool(removed)("/a", True)) == "done"
    with pytest.raises(TypeError, match="removed the required argument 'path'"):
        asyncio.run(tool(cleared)("/etc", True))
    assert calls == [("/a", False)]


@pytest.mark.parametrize(
    "header",
    [
        "t=1000000,v1=é",
        "t=1000000,v1=" + "é" * 64,
        "t=1000000,v1=zz",
        "t=1000000,v1=",
        "t=²,v1=00",
        "t=" + "9" * 5000 + ",v1=00",
        "t=1000000",
        "v1=00",
        "garbage",
    ],
)
def test_verify_webhook_refuses_every_malformed_header_with_its_error(header):
    with pytest.raises(WebhookVerificationError, match="malformed"):
        verify_webhook("whsec_1", {"X-HITL-Signature": header}, b"{}", now=1_000_000)


def test_verify_webhook_still_accepts_a_good_signature_next_to_a_stale_one():
    body = b'{"event":"checkpoint.decided"}'
    good = sign("whsec_1", body, timestamp=1_000_000)
    header = good.replace("v1=", "v1=" + "0" * 64 + ",v1=")
    assert verify_webhook("whsec_1", {"X-HITL-Signature": header}, body, now=1_000_000)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_wait_outlives_a_portal_restart_and_returns_the_decision(agent, reviewer):
    """A web restart (a deploy) during a long-poll: `wait()` keeps retrying with capped
    backoff instead of giving up after the transport's few retries, and returns the decision
    made while (or after) the portal was down."""
    import threading
    import time as _time

    from agents.services import AGENT_KEYS
    from approvals.audit import Actor
    from approvals.transitions import checkpoint_decide
    from tests.api.live import LivePortal

    portal = LivePortal().start()
    client = HitlClient(portal.url, AGENT_KEYS.create(agent, Actor.system("test")), retries=1)
    cp = client.request_approval("restart", tool="t", args={"n": 1})
    outcome: dict = {}

    def waiter():
        try:
            outcome["cp"] = client.wait(cp.id, timeout=120)
        except Exception as exc:  # asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        _time.sleep(0.5)
        portal.stop()  # the long-poll connection drops; the portal is down
        _time.sleep(4)  # longer than the transport's own retries (retries=1)
        assert thread.is_alive() and not outcome, outcome
        checkpoint_decide(cp.id, reviewer, "approve")
        restarted = LivePortal()
        restarted.port, restarted.url = portal.port, portal.url
        restarted.env["HITL_SITE_URL"] = portal.url
        restarted.start()
        thread.join(timeout=60)
    finally:
        portal.stop()
        if "restarted" in locals():
            restarted.stop()
            restarted.wait_for_sessions_to_close()
    assert "error" not in outcome, outcome
    assert outcome["cp"].approved and outcome["cp"].approved_args == {"n": 1}
