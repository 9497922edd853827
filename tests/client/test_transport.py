"""The client's two halves, without a portal: the blocking and the async driver make the same
retry decisions on the same scripted answers (httpx.MockTransport), and each blocking method
and its async twin send the same requests."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import httpx
import pytest

from hitl_client import (
    ApiError,
    ConflictError,
    HitlClient,
    HitlError,
    NotFound,
    WaitTimeout,
    _transport,
)
from hitl_client._transport import Call, asend, send
from hitl_client.models import Run


class Script:
    """Answers each request with the next step: a (status, json, headers) triple, or "drop" for
    a connection error. Records the requests and the delays the driver slept, on a clock of its
    own that only its sleeps advance."""

    def __init__(self, steps: list, monkeypatch: pytest.MonkeyPatch):
        self.steps = iter(steps)
        self.requests: list[httpx.Request] = []
        self.delays: list[float] = []
        self.now = 1000.0

        def sleep(delay: float) -> None:
            self.delays.append(delay)
            self.now += delay

        async def asleep(delay: float) -> None:
            sleep(delay)

        monkeypatch.setattr(_transport, "sleep", sleep)
        monkeypatch.setattr(_transport, "asleep", asleep)
        monkeypatch.setattr(_transport, "monotonic", lambda: self.now)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = next(self.steps)
        if step == "drop":
            raise httpx.ConnectError("connection refused", request=request)
        status, body, headers = step
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)


BASE_URL = "http://portal.invalid/api/v1/"


def send_blocking(script: Script, call: Call, retries: int, patience: float | None) -> Any:
    with httpx.Client(base_url=BASE_URL, transport=httpx.MockTransport(script)) as http:
        return send(http, call, retries, patience)


def send_async(script: Script, call: Call, retries: int, patience: float | None) -> Any:
    async def main():
        transport = httpx.MockTransport(script)
        async with httpx.AsyncClient(base_url=BASE_URL, transport=transport) as http:
            return await asend(http, call, retries, patience)

    return asyncio.run(main())


def both_drivers(
    steps: list, call: Call, retries: int, monkeypatch, patience: float | None = 0.0
) -> list[dict[str, Any]]:
    """What `send` and `asend` each did with `call` against the same script."""
    seen = []
    for driver in (send_blocking, send_async):
        script = Script(steps, monkeypatch)
        try:
            outcome: Any = driver(script, call, retries, patience)
        except HitlError as exc:
            outcome = exc
        seen.append({"outcome": outcome, "requests": script.requests, "delays": script.delays})
    return seen


def test_it_retries_drops_5xx_and_429_then_returns_the_body(monkeypatch):
    steps = [
        "drop",
        (503, {}, {}),
        (429, {}, {"Retry-After": "3"}),
        (429, {}, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}),
        (429, {}, {}),
        (429, {}, {"Retry-After": "999"}),
        (500, {}, {}),
        (201, {"id": "cp-1"}, {}),
    ]
    call = Call("POST", "/checkpoints/", {"json": {"title": "t"}})
    for seen in both_drivers(steps, call, retries=7, monkeypatch=monkeypatch):
        assert seen["outcome"] == {"id": "cp-1"}
        # backoff by attempt; a 429 says how long itself (an unreadable date: 1 s; at most 60)
        assert seen["delays"] == [0.5, 1.0, 3.0, 1.0, 1.0, 60.0, 8.0]
        assert len(seen["requests"]) == 8
        assert {str(r.url) for r in seen["requests"]} == {
            "http://portal.invalid/api/v1/checkpoints/"
        }
        keys = {r.headers["Idempotency-Key"] for r in seen["requests"]}
        assert len(keys) == 1 and keys != {""}  # one key, kept across the retries
        assert {r.content for r in seen["requests"]} == {b'{"title":"t"}'}


def test_it_gives_up_after_the_last_retry_with_the_portal_problem(monkeypatch):
    steps = [(503, {"code": "busy", "detail": "try later"}, {})] * 3
    for seen in both_drivers(steps, Call("GET", "queue/"), retries=2, monkeypatch=monkeypatch):
        error = seen["outcome"]
        assert type(error) is ApiError
        assert (error.status, error.code, error.detail) == (503, "busy", "try later")
        assert seen["delays"] == [0.5, 1.0] and len(seen["requests"]) == 3


def test_it_wraps_the_last_network_error_in_hitl_error(monkeypatch):
    for seen in both_drivers(["drop"] * 3, Call("GET", "/runs/r/"), 2, monkeypatch):
        error = seen["outcome"]
        assert type(error) is HitlError and str(error) == "GET /runs/r/: connection refused"
        assert isinstance(error.__cause__, httpx.ConnectError)
        assert seen["delays"] == [0.5, 1.0]


@pytest.mark.parametrize(
    ("answer", "error_type", "problem", "detail"),
    [
        (
            (404, {"code": "not_found", "detail": "no such checkpoint"}, {}),
            NotFound,
            {"code": "not_found", "detail": "no such checkpoint"},
            "no such checkpoint",
        ),
        ((409, {"winner": "ann"}, {}), ConflictError, {"winner": "ann"}, '{"winner":"ann"}'),
        ((400, "<html>bad</html>", {}), ApiError, {}, "<html>bad</html>"),
        ((422, ["not", "a", "problem"], {}), ApiError, {}, '["not","a","problem"]'),
    ],
)
def test_it_does_not_retry_other_errors(monkeypatch, answer, error_type, problem, detail):
    for seen in both_drivers([answer], Call("POST", "x/"), 4, monkeypatch):
        error = seen["outcome"]
        assert type(error) is error_type
        assert (error.status, error.problem, error.detail) == (answer[0], problem, detail)
        assert seen["delays"] == [] and len(seen["requests"]) == 1
        if error_type is ConflictError:
            assert error.winner == "ann"


def test_the_backoff_stops_growing_at_eight_seconds(monkeypatch):
    steps = [(502, {}, {})] * 6 + [(204, "", {})]
    for seen in both_drivers(steps, Call("GET", "x/"), 6, monkeypatch):
        assert seen["outcome"] is None  # no content
        assert seen["delays"] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_a_503s_retry_after_sets_the_delay(monkeypatch):
    steps = [(503, {}, {"Retry-After": "5"}), (503, {}, {"Retry-After": "soon"}), (200, {}, {})]
    for seen in both_drivers(steps, Call("GET", "x/"), 2, monkeypatch):
        assert seen["outcome"] == {} and seen["delays"] == [5.0, 1.0]


def test_a_post_retries_an_outage_past_its_retries_until_the_deadline(monkeypatch):
    """A POST (it carries its Idempotency-Key) outlives an outage that spans many more attempts
    than `retries`, with the same key on every one; a GET stops at `retries`."""
    steps = ["drop"] * 3 + [(503, {}, {"Retry-After": "5"})] * 6 + [(201, {"id": "r-1"}, {})]
    post = Call("POST", "runs/", {"json": {"task": "t"}})
    for seen in both_drivers(steps, post, 1, monkeypatch, patience=120):
        assert seen["outcome"] == {"id": "r-1"} and len(seen["requests"]) == 10
        assert seen["delays"] == [0.5, 1.0, 2.0] + [5.0] * 6
        assert len({r.headers["Idempotency-Key"] for r in seen["requests"]}) == 1
    for seen in both_drivers(steps, Call("GET", "runs/"), 1, monkeypatch, patience=120):
        assert type(seen["outcome"]) is HitlError and len(seen["requests"]) == 2


def test_a_post_gives_up_at_its_deadline_after_one_last_attempt_there(monkeypatch):
    steps = [(503, {"code": "database_unavailable"}, {})] * 20
    for seen in both_drivers(steps, Call("POST", "x/"), 1, monkeypatch, patience=10):
        error = seen["outcome"]
        assert type(error) is ApiError and error.code == "database_unavailable"
        # 0.5 + 1 + 2 + 4 = 7.5 s, then the sleep that would overshoot ends at the deadline
        assert seen["delays"] == [0.5, 1.0, 2.0, 4.0, 2.5]
        assert len(seen["requests"]) == 6
    for seen in both_drivers(steps, Call("POST", "x/"), 3, monkeypatch, patience=0):
        assert type(seen["outcome"]) is ApiError and len(seen["requests"]) == 4


def test_a_post_without_a_deadline_waits_out_any_outage(monkeypatch):
    steps = ["drop"] * 40 + [(200, {"ok": True}, {})]
    for seen in both_drivers(steps, Call("POST", "x/"), 0, monkeypatch, patience=None):
        assert seen["outcome"] == {"ok": True} and len(seen["requests"]) == 41
        assert max(seen["delays"]) == 8.0


def test_a_refusal_is_not_retried_even_before_the_deadline(monkeypatch):
    steps = [(400, {"code": "invalid"}, {}), (201, {}, {})]
    for seen in both_drivers(steps, Call("POST", "x/"), 4, monkeypatch, patience=120):
        assert type(seen["outcome"]) is ApiError and len(seen["requests"]) == 1


def test_only_a_post_gets_an_idempotency_key_and_the_caller_may_choose_it(monkeypatch):
    ok = [(200, {}, {})]
    mine = Call("POST", "x/", {"json": {}, "headers": {"Idempotency-Key": "mine"}})
    for seen in both_drivers(ok, mine, 0, monkeypatch):
        assert seen["requests"][0].headers["Idempotency-Key"] == "mine"
    for seen in both_drivers(ok, Call("GET", "x/", {"headers": None}), 0, monkeypatch):
        assert "Idempotency-Key" not in seen["requests"][0].headers
    post = Call("POST", "x/", {"json": {}})
    keys = [
        seen["requests"][0].headers["Idempotency-Key"]
        for seen in both_drivers(ok, post, 0, monkeypatch)
    ]
    assert keys[0] != keys[1]  # a new key for each call: another call is another action
    assert post.options == {"json": {}}  # the Call itself is left as it was


# --- the methods: each blocking one and its async twin ---------------------------------------


class Recorder(HitlClient):
    """The client with `request`/`arequest` answered here: a run, a checkpoint, and long-polls
    that stay pending `pending_polls` times."""

    def __init__(self, pending_polls: int = 0):
        super().__init__("http://portal.invalid", "hitl_test")
        self.pending_polls = pending_polls
        self.calls: list[tuple] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append((method, path, kwargs))
        if path == "runs/":
            return {"id": f"run-{len(self.calls)}", "status": "running"}
        if path.endswith("/wait"):
            self.pending_polls -= 1
            status = "pending" if self.pending_polls >= 0 else "answered"
            return {"id": "cp-1", "status": status, "decision": {"answer": "eu-west-1"}}
        return {"id": "cp-1", "status": "pending", "decision": None}

    async def arequest(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs)


def sync_and_async(method: str, *args: Any, pending_polls: int = 0, **kwargs: Any):
    """Call the blocking method and its async twin on fresh recorders: (result, calls) each."""
    names = {"wait": "await_checkpoint"}
    done = []
    for name in (method, names.get(method, f"a{method}")):
        client = Recorder(pending_polls)
        try:
            result = getattr(client, name)(*args, **kwargs)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
        except (TypeError, WaitTimeout) as exc:
            result = f"{type(exc).__name__}: {exc}"
        done.append((getattr(result, "data", result), client.calls, client.run))
    return done


@pytest.mark.parametrize(
    "twins",
    [
        ("start_run", "astart_run"),
        ("request_approval", "arequest_approval"),
        ("ask", "aask"),
        ("wait", "await_checkpoint"),
    ],
)
def test_the_async_twin_has_the_same_signature(twins):
    blocking, awaiting = (getattr(HitlClient, name) for name in twins)
    assert inspect.signature(blocking) == inspect.signature(awaiting)
    assert inspect.iscoroutinefunction(awaiting) and not inspect.iscoroutinefunction(blocking)
    assert (blocking.__name__, awaiting.__name__) == twins
    assert blocking.__doc__ and blocking.__doc__ == awaiting.__doc__


def test_both_request_approvals_start_a_run_and_send_the_same_checkpoint():
    for data, calls, run in sync_and_async(
        "request_approval",
        "Delete logs",
        tool="delete_files",
        args={"paths": ["/a"]},
        risk="high",
        context={"host": "web-1"},
        reasoning=["disk full"],
        expires_in=90.5,
        options=["yes", "no"],
        idempotency_key="k-1",
    ):
        assert data == {"id": "cp-1", "status": "pending", "decision": None}
        assert run == Run({"id": "run-1", "status": "running"})
        assert calls == [
            ("POST", "runs/", {"json": {"task": "Delete logs", "external_id": "", "metadata": {}}}),
            (
                "POST",
                "checkpoints/",
                {
                    "json": {
                        "run": "run-1",
                        "kind": "approval",
                        "title": "Delete logs",
                        "summary": "",
                        "risk": "high",
                        "role_hint": "",
                        "action": {"tool": "delete_files", "args": {"paths": ["/a"]}},
                        "context": {"host": "web-1", "reasoning": ["disk full"]},
                        "expires_in": 90,
                        "options": ["yes", "no"],
                    },
                    "headers": {"Idempotency-Key": "k-1"},
                },
            ),
        ]


def test_both_request_approvals_refuse_an_unknown_keyword_before_any_request():
    for result, calls, run in sync_and_async("request_approval", "x", colour="red"):
        assert result.startswith("TypeError") and "colour" in result
        assert calls == [] and run is None


def test_both_asks_wait_for_the_answer_on_the_given_run():
    for answer, calls, _ in sync_and_async("ask", "Which region?", run="r-9", pending_polls=1):
        assert answer == "eu-west-1"
        assert [(method, path) for method, path, _ in calls] == [
            ("POST", "checkpoints/"),
            ("GET", "checkpoints/cp-1/wait"),
            ("GET", "checkpoints/cp-1/wait"),
        ]
        assert calls[0][2]["json"]["kind"] == "question"
        assert calls[0][2]["json"]["run"] == "r-9"


def test_both_waits_long_poll_in_slices_until_decided():
    for data, calls, _ in sync_and_async("wait", "cp-1", pending_polls=2):
        assert data["status"] == "answered"
        assert (
            calls
            == [("GET", "checkpoints/cp-1/wait", {"params": {"timeout": "55.0"}, "timeout": 70.0})]
            * 3
        )


def test_both_waits_give_up_at_their_own_timeout():
    for result, calls, _ in sync_and_async("wait", "cp-1", timeout=0, pending_polls=5):
        assert result == "WaitTimeout: checkpoint cp-1 still pending"
        assert calls == [
            ("GET", "checkpoints/cp-1/wait", {"params": {"timeout": "0.0"}, "timeout": 15.0})
        ]
