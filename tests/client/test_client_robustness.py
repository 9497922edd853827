"""The client's edges: `require_approval` treats the reviewer's edited arguments as
authoritative, `verify_webhook` refuses every malformed signature header with
WebhookVerificationError, and (against a live portal) a wait outlives a restart and a create
outlives an outage of the database."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
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
    from approvals.transitions import checkpoint_decide
    from audit.events import Actor
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


class Answers(httpx.HTTPTransport):
    """The real transport, recording each attempt: (method, path, Idempotency-Key, status or
    the transport error's name)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, str | None, int | str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("Idempotency-Key")
        try:
            response = super().handle_request(request)
        except httpx.TransportError as exc:
            self.seen.append((request.method, request.url.path, key, type(exc).__name__))
            raise
        self.seen.append((request.method, request.url.path, key, response.status_code))
        return response


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_creates_outlive_a_20_second_database_outage_and_make_one_row_each(agent_key, tmp_path):
    """The database of a live portal goes away for ~20 s (the API answers 503) while an agent
    asks for approval and starts a run (blocking and asyncio): both keep retrying with their
    Idempotency-Key past their retries until the client's outage deadline, succeed once the
    database is back, and each made exactly one row."""
    from agents.models import Run as RunRow
    from approvals.models import Checkpoint as CheckpointRow
    from tests.api.live import LivePortal
    from tests.outage import DatabaseOutage

    outage = DatabaseOutage(tmp_path)
    portal = LivePortal(DATABASE_URL=outage.url).start()
    answers = Answers()
    # One retry: every attempt past the second is the outage deadline's (default 120 s).
    client = HitlClient(portal.url, agent_key, retries=1, transport=answers)
    outcome: dict[str, Any] = {}

    def ask(run):
        try:
            outcome["cp"] = client.request_approval("asked", tool="t", args={"n": 1}, run=run)
        except Exception as exc:  # asserted below
            outcome["ask"] = exc

    def start():
        try:
            outcome["run"] = asyncio.run(client.astart_run("started"))
        except Exception as exc:  # asserted below
            outcome["start"] = exc

    try:
        run = client.start_run("before the outage")
        outage.down()
        probe = httpx.post(
            f"{portal.url}/api/v1/runs/",
            json={"task": "probe"},
            headers={"Authorization": f"Bearer {agent_key}"},
        )
        assert probe.status_code == 503 and probe.json()["code"] == "database_unavailable"
        threads = [threading.Thread(target=ask, args=(run,)), threading.Thread(target=start)]
        for thread in threads:
            thread.start()
        time.sleep(20)
        assert all(thread.is_alive() for thread in threads) and not outcome, outcome
        outage.up()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        outage.up()
        portal.stop()
        portal.wait_for_sessions_to_close()
    assert set(outcome) == {"cp", "run"}, outcome
    assert CheckpointRow.objects.filter(title="asked").count() == 1
    assert str(CheckpointRow.objects.get(title="asked").pk) == outcome["cp"].id
    assert RunRow.objects.filter(task="started").count() == 1
    assert RunRow.objects.filter(task="probe").count() == 0
    asks = [(key, status) for method, path, key, status in answers.seen if "checkpoints" in path]
    assert len({key for key, _ in asks}) == 1  # one key on every attempt
    statuses = [status for _, status in asks]
    assert statuses[-1] == 201 and statuses.count(503) > 2, statuses
