"""How the client talks to the portal, once for both of its halves (blocking and asyncio).

- A `Call` is one API request as a client method builds it: method, path and httpx's request
  keywords (json, params, data, files, headers, timeout).
- `_decide` is the one retry policy. It reads one attempt's outcome (a response, or the transport
  error it met) and returns the parsed body, returns `_Retry(delay)`, or raises. `send` and
  `asend` are its two drivers: they only send and sleep. A call is retried `retries` times; one
  that carries an Idempotency-Key (every POST: a create, a decision, a redemption) is retried
  through an outage until the caller's deadline (`patience`), as `wait()` is: its key makes
  every retry the same request, so a retry never acts twice.
- `check_server` / `acheck_server` are the first contact: the server's versions from
  GET health/, before any request that could change something (docs/client.md, "Versions").
- An operation that makes several requests (start a run and then ask; long-poll in slices) is
  written once, as a generator that yields Calls and receives their results (a `Flow`).
  `twins(flow)` makes it into a blocking method that sends each Call with `self.request` and an
  async one that awaits `self.arequest`, both with the flow's signature.
"""

from __future__ import annotations

import inspect
import math
import uuid
from asyncio import sleep as asleep
from collections.abc import Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass, field
from itertools import count
from time import monotonic, sleep
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, get_args

import httpx

from hitl_client._version import compatibility_problem
from hitl_client.errors import ApiError, ConflictError, HitlError, IncompatibleServer, NotFound

RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Call:
    """One API request: `path` is relative to /api/v1/, `options` are httpx's request keywords
    (and `raw=True`: return the response's bytes instead of its JSON)."""

    method: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)


# --- the retry policy --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Retry:
    delay: float  # seconds to sleep before the next attempt


def _error_for(response: httpx.Response) -> ApiError:
    """The exception for an error response, carrying the portal's problem details."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = None
    cls = {404: NotFound, 409: ConflictError}.get(response.status_code, ApiError)
    return cls(response.status_code, problem, response.text[:500])


def _retry_delay(attempt: int, response: httpx.Response | None) -> float:
    """A 429's Retry-After, or a 503's if it sends one (at most a minute), else exponential
    backoff from 0.5 s to 8 s."""
    backoff = min(0.5 * 2**attempt, 8.0)
    if response is not None and response.status_code == 429:
        try:
            return min(float(response.headers.get("Retry-After", "1")), 60.0)
        except ValueError:
            return 1.0
    if response is not None and response.status_code == 503 and "Retry-After" in response.headers:
        try:
            return min(float(response.headers["Retry-After"]), 60.0)
        except ValueError:
            return backoff
    return backoff


def outage(exc: HitlError) -> bool:
    """The portal is unreachable or overloaded (worth waiting out), as opposed to refusing the
    request (4xx): a transport error, 429 or 5xx."""
    status = getattr(exc, "status", None)
    return status is None or status in RETRY_STATUSES


def _decide(
    call: Call,
    attempt: int,
    retries: int,
    outcome: httpx.Response | httpx.TransportError,
    left: float = -math.inf,
) -> Any:
    """What to do after `attempt` (0 for the first) of `call` got a response or met a transport
    error: return the parsed body (None if empty); return `_Retry` for a transport error or a
    status in RETRY_STATUSES while attempts are left, or while `left` (seconds to the caller's
    deadline; `math.inf`: none) is positive; or raise HitlError / ApiError. A sleep past the
    last attempt ends at the deadline: one more attempt is made there."""
    failed = isinstance(outcome, httpx.TransportError)
    if not failed and outcome.status_code < 400:
        if call.options.get("raw"):
            return outcome.content
        return outcome.json() if outcome.content else None
    spent = attempt >= retries
    if (not failed and outcome.status_code not in RETRY_STATUSES) or (spent and left <= 0):
        if failed:
            raise HitlError(f"{call.method} {call.path}: {outcome}") from outcome
        raise _error_for(outcome)
    delay = _retry_delay(attempt, None if failed else outcome)
    return _Retry(min(delay, left) if spent else delay)


def _request_args(call: Call) -> tuple[str, str, dict[str, Any]]:
    """httpx's arguments for every attempt of `call`. A POST gets an Idempotency-Key (unless
    the caller chose one), the same on every retry: the portal replays its first response
    instead of acting twice."""
    options = dict(call.options)
    options.pop("raw", None)  # ours: return the body's bytes, not its JSON
    if call.method == "POST":
        headers = dict(options.pop("headers", None) or {})
        headers.setdefault("Idempotency-Key", str(uuid.uuid4()))
        options["headers"] = headers
    return call.method, call.path.lstrip("/"), options


def _deadline(options: dict[str, Any], patience: float | None) -> float:
    """Until when (`monotonic()`) an outage is retried past the attempts: a call with an
    Idempotency-Key for `patience` seconds (None: no end); any other call not at all."""
    if "Idempotency-Key" not in (options.get("headers") or {}):
        return -math.inf
    return math.inf if patience is None else monotonic() + patience


def send(http: httpx.Client, call: Call, retries: int, patience: float | None = 0.0) -> Any:
    """Send `call`, retrying as `_decide` says; blocks while it sleeps."""
    method, url, options = _request_args(call)
    deadline = _deadline(options, patience)
    for attempt in count():
        try:
            outcome = http.request(method, url, **options)
        except httpx.TransportError as exc:
            outcome = exc
        verdict = _decide(call, attempt, retries, outcome, deadline - monotonic())
        if not isinstance(verdict, _Retry):
            return verdict
        sleep(verdict.delay)
    raise AssertionError("unreachable")


async def asend(
    http: httpx.AsyncClient, call: Call, retries: int, patience: float | None = 0.0
) -> Any:
    """`send` for asyncio."""
    method, url, options = _request_args(call)
    deadline = _deadline(options, patience)
    for attempt in count():
        try:
            outcome = await http.request(method, url, **options)
        except httpx.TransportError as exc:
            outcome = exc
        verdict = _decide(call, attempt, retries, outcome, deadline - monotonic())
        if not isinstance(verdict, _Retry):
            return verdict
        await asleep(verdict.delay)
    raise AssertionError("unreachable")


# --- first contact -----------------------------------------------------------------------------


def _compatible(url: str, outcome: httpx.Response | httpx.TransportError) -> bool:
    """Reads GET health/'s answer: True once the server is known to speak our API, False if it
    could not tell now (unreachable, or an error page during an outage: the next call asks
    again); raises IncompatibleServer when the versions cannot work together."""
    if isinstance(outcome, httpx.TransportError):
        return False
    try:
        body = outcome.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if outcome.status_code in RETRY_STATUSES:
            return False
        body = {}
    version, api = body.get("version"), body.get("api_version")
    problem = compatibility_problem(version, api)
    if problem:
        raise IncompatibleServer(url, problem, version, api)
    return True


def check_server(http: httpx.Client, url: str) -> bool:
    """One GET health/ (no authentication, no retries): see `_compatible`."""
    try:
        return _compatible(url, http.request("GET", "health/"))
    except httpx.TransportError as exc:
        return _compatible(url, exc)


async def acheck_server(http: httpx.AsyncClient, url: str) -> bool:
    """`check_server` for asyncio."""
    try:
        return _compatible(url, await http.request("GET", "health/"))
    except httpx.TransportError as exc:
        return _compatible(url, exc)


# --- operations written once ---------------------------------------------------------------------

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Pause:
    """What a flow yields to wait before its next step (the driver sleeps, blocking or not)."""

    seconds: float


# Yields each request (or a Pause), receives its result, returns T. A request that fails
# (after the transport's own retries) raises its HitlError inside the flow, at the yield.
Flow = Generator[Call | Pause, Any, T]


class _Requests(Protocol):
    def request(self, method: str, path: str, **kwargs: Any) -> Any: ...

    async def arequest(self, method: str, path: str, **kwargs: Any) -> Any: ...


C = TypeVar("C", bound=_Requests)


class _Steps(Generic[T]):
    """A flow's Calls, one by one: the driver sets `result` to each Call's result before asking
    for the next; once the flow returns, its return value is in `value`."""

    def __init__(self, flow: Flow[T]):
        self._flow = flow
        self.result: Any = None
        self.error: HitlError | None = None
        self.value: T

    def __iter__(self) -> Iterator[Call | Pause]:
        while True:
            try:
                if self.error is not None:
                    error, self.error = self.error, None
                    step = self._flow.throw(error)
                else:
                    step = self._flow.send(self.result)
            except StopIteration as done:
                self.value = done.value
                return
            self.result = None
            yield step


def twins(
    flow: Callable[Concatenate[C, P], Flow[T]], async_name: str = ""
) -> tuple[Callable[Concatenate[C, P], T], Callable[Concatenate[C, P], Coroutine[Any, Any, T]]]:
    """The blocking and the async method of one operation, both with `flow`'s signature and
    docstring. `flow` is a method named `_name`; the methods are `name` and `async_name`
    (by default `aname`)."""

    def blocking(self: C, *args: P.args, **kwargs: P.kwargs) -> T:
        steps = _Steps(flow(self, *args, **kwargs))
        for step in steps:
            if isinstance(step, Pause):
                sleep(step.seconds)
                continue
            try:
                steps.result = self.request(step.method, step.path, **step.options)
            except HitlError as exc:
                steps.error = exc
        return steps.value

    async def awaiting(self: C, *args: P.args, **kwargs: P.kwargs) -> T:
        steps = _Steps(flow(self, *args, **kwargs))
        for step in steps:
            if isinstance(step, Pause):
                await asleep(step.seconds)
                continue
            try:
                steps.result = await self.arequest(step.method, step.path, **step.options)
            except HitlError as exc:
                steps.error = exc
        return steps.value

    signature = inspect.signature(flow, eval_str=True)
    signature = signature.replace(return_annotation=get_args(signature.return_annotation)[-1])
    name = flow.__name__.removeprefix("_")
    owner = flow.__qualname__.rpartition(".")[0]
    for method, method_name in ((blocking, name), (awaiting, async_name or f"a{name}")):
        method.__name__ = method_name
        method.__qualname__ = f"{owner}.{method_name}"
        method.__module__ = flow.__module__
        method.__doc__ = flow.__doc__
        method.__signature__ = signature  # type: ignore[attr-defined]
    return blocking, awaiting
