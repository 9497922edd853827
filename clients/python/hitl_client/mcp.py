"""The portal as an MCP approval server: three tools (`request_approval`, `ask_human`,
`check_status`) built on the official `mcp` SDK (2.x, `pip install hitl-portal[mcp]`).

One tool contract, two ways to serve it:

- `hitl mcp`: stdio, for a host that starts the server itself (Claude Desktop/Code, Cursor,
  ...); it talks to the portal with `HitlClient` (`HITL_URL`, `HITL_API_KEY`). One MCP
  session is one portal run.
- `/mcp` on the portal (streamable HTTP, stateless, the agent key as bearer): the portal's
  `integrations.mcp` serves the same tools with an in-process backend.

A tool waits for the decision inside the call for up to `wait_seconds` (default 30, at most
55: hosts time tool calls out), sending progress notifications meanwhile when the request
asked for them; if nobody decided yet it answers `pending` and the model calls
`check_status` again. Results are structured (`structuredContent`, with an output schema)
and text. What goes wrong is a tool error the model can read (`isError`): an unknown
checkpoint, a refused request, and the portal itself failing (unreachable, its database down,
this server's key refused, ...), saying why, whether a retry can help, and that the action must
not run meanwhile.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

# This module is the MCP integration: importing it needs the SDK (`hitl_client` itself does
# not import it).
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from hitl_client._text import one_line
from hitl_client.errors import ApiError, HitlError

if TYPE_CHECKING:
    from hitl_client.client import HitlClient

log = logging.getLogger(__name__)

DEFAULT_WAIT = 30
MAX_WAIT = 55
PROGRESS_EVERY = 10.0
SOURCE = "mcp"


class ToolResult(TypedDict):
    checkpoint_id: str
    status: Literal["pending", "approved", "rejected", "answered", "expired", "cancelled"]
    outcome: str | None
    approved: bool
    args: dict[str, Any] | None
    reason: str
    answer: str | None
    decided_by: str | None
    review_url: str


class UnknownCheckpoint(Exception):
    """No such checkpoint of this agent (or not a valid id)."""


class RequestRefused(Exception):
    """The portal refused the request (invalid input, rate limit, finished run): the message
    is for the model."""


class PortalUnavailable(Exception):
    """The portal did not do what was asked, for a reason that is not the request's: it is
    unreachable, its database is down, it refused this server's key. `cause` says which, for
    the model; `retryable`: whether calling again later can help."""

    def __init__(self, cause: str, retryable: bool):
        super().__init__(cause)
        self.cause = cause
        self.retryable = retryable


# Refusals that are about this server (its key, its agent, its rate), not about the request.
_NOT_THE_REQUESTS = {401, 403, 423, 429}
# `hitl mcp`'s client gives up on an outage well within a host's tool-call timeout: the model
# is told why and retries, instead of the host cancelling a silent call.
RETRIES = 1
OUTAGE_TIMEOUT = 10.0


def portal_unavailable(exc: HitlError, url: str) -> PortalUnavailable:
    """What the model is told when a portal call failed for a reason not its request's."""
    status = getattr(exc, "status", None)
    if not isinstance(exc, ApiError) or status is None:
        reason = exc.__cause__ or exc
        return PortalUnavailable(f"the approval portal at {url} is unreachable ({reason})", True)
    said = f"{status} {exc.code}: {exc.detail}" if exc.code else f"{status}: {exc.detail}"
    if status == 503 and exc.code == "database_unavailable":
        return PortalUnavailable(f"the approval portal's database is unavailable ({said})", True)
    if status == 401:
        return PortalUnavailable(
            f"the approval portal refused this MCP server's API key ({said}): it is missing, "
            "wrong or revoked; the user must fix HITL_API_KEY in this server's configuration",
            False,
        )
    if status == 423:
        return PortalUnavailable(f"this agent is halted in the approval portal ({said})", False)
    if status == 429:
        return PortalUnavailable(f"the approval portal is rate-limiting this agent ({said})", True)
    if status >= 500:
        return PortalUnavailable(f"the approval portal failed ({said})", True)
    return PortalUnavailable(f"the approval portal refused the call ({said})", False)


def _then(failure: PortalUnavailable, retry: str) -> str:
    """The end of an outage message: whether and how to retry."""
    if failure.retryable:
        return f"This is likely temporary: {retry} in a minute or so."
    return "Retrying will not help until a person fixes this; tell the user."


class Backend(Protocol):
    """What the tools need from the portal: the checkpoint JSON of the REST API."""

    async def request_approval(self, body: dict[str, Any], client_name: str) -> dict: ...

    async def get(self, checkpoint_id: str) -> dict: ...

    async def wait(self, checkpoint_id: str, seconds: float) -> dict: ...


def result_for(cp: dict[str, Any]) -> ToolResult:
    """The tool result for a checkpoint's JSON: `args` is what to run once approved (the
    reviewer's edit, JSON types kept, when `outcome` is `modify`)."""
    decision = cp.get("decision") or {}
    approved = cp["status"] == "approved"
    action = decision.get("action") or {}
    return {
        "checkpoint_id": cp["id"],
        "status": cp["status"],
        "outcome": decision.get("outcome"),
        "approved": approved,
        "args": action.get("args") if approved else None,
        "reason": decision.get("comment") or "",
        "answer": decision.get("answer"),
        "decided_by": decision.get("decided_by"),
        "review_url": cp.get("review_url", ""),
    }


def _wait_seconds(value: float | None) -> float:
    if value is None:
        return DEFAULT_WAIT
    return max(0.0, min(float(value), MAX_WAIT))


def _client_name(ctx: Context | None) -> str:
    try:
        params = ctx.session.client_params if ctx is not None else None
        name = params.client_info.name if params is not None else ""
    except Exception:  # stateless / 2026 requests may carry no client info
        name = ""
    return name or "mcp"


async def _wait(backend: Backend, cp: dict, wait_seconds: float, ctx: Context | None) -> dict:
    """Long-poll in slices, with a progress notification per slice (hosts that asked for
    progress reset their timeout on it)."""
    deadline = time.monotonic() + wait_seconds
    step = 0
    while cp["status"] == "pending":
        left = deadline - time.monotonic()
        if left <= 0:
            break
        cp = await backend.wait(cp["id"], min(left, PROGRESS_EVERY))
        step += 1
        if cp["status"] == "pending" and ctx is not None:
            try:
                await ctx.report_progress(step, None, "waiting for a human reviewer")
            except Exception:  # no progress token, or the client went away: keep waiting
                log.debug("progress notification not sent", exc_info=True)
    return cp


def build_server(backend_for: Callable[[], Backend], **server_options: Any) -> MCPServer:
    """An `MCPServer` with the three tools. `backend_for()` gives the backend of the current
    request (the stdio process's client, or the HTTP request's agent)."""
    server = MCPServer(
        name="hitl-portal",
        instructions=(
            "Ask a human before you do anything risky or irreversible: call request_approval "
            "with the exact tool and arguments, and run only what comes back approved, with "
            "the returned `args`. If the result is still pending, call check_status with its "
            "checkpoint_id. A rejection's `reason` says what to do instead."
        ),
        **server_options,
    )

    async def submit(backend: Backend, body: dict, ctx, tool: str) -> dict:
        try:
            return await backend.request_approval(body, _client_name(ctx))
        except RequestRefused as exc:
            raise ToolError(f"The portal refused the request: {exc}") from None
        except PortalUnavailable as exc:
            raise ToolError(
                f"Nothing was asked, so nothing is approved: {exc.cause}. Do not go ahead "
                "without an approval. "
                + _then(exc, f"call {tool} again with the same arguments (it will not ask twice)")
            ) from None

    async def finish(backend: Backend, cp: dict, wait_seconds: float | None, ctx) -> ToolResult:
        try:
            return result_for(await _wait(backend, cp, _wait_seconds(wait_seconds), ctx))
        except RequestRefused as exc:
            raise ToolError(str(exc)) from None
        except PortalUnavailable as exc:
            raise ToolError(
                f"Your request is checkpoint {cp['id']}, not decided as far as this server "
                f"knows: {exc.cause}. Do not go ahead without an approval, and do not ask "
                "again. " + _then(exc, f"call check_status with checkpoint_id {cp['id']!r}")
            ) from None

    @server.tool(title="Ask a human to approve an action")
    async def request_approval(
        title: str,
        tool: str,
        args: dict[str, Any],
        summary: str = "",
        risk: Literal["low", "medium", "high", "critical"] = "medium",
        reasoning: list[str] | None = None,
        wait_seconds: float | None = DEFAULT_WAIT,
        ctx: Context | None = None,
    ) -> ToolResult:
        """Ask a human reviewer to approve running `tool` with `args` before you run it. Run
        it only if `approved` is true, and then with the returned `args` (a reviewer may have
        edited them). Waits up to `wait_seconds` (max 55); if still `pending`, call
        check_status later."""
        backend = backend_for()
        body: dict[str, Any] = {
            "kind": "approval",
            "title": title[:300],
            "summary": summary,
            "risk": risk,
            "action": {"tool": tool, "args": args},
            "context": {"source": SOURCE, **({"reasoning": reasoning} if reasoning else {})},
        }
        cp = await submit(backend, body, ctx, "request_approval")
        return await finish(backend, cp, wait_seconds, ctx)

    @server.tool(title="Ask a human a question")
    async def ask_human(
        question: str,
        options: list[str] | None = None,
        wait_seconds: float | None = DEFAULT_WAIT,
        ctx: Context | None = None,
    ) -> ToolResult:
        """Ask a human reviewer a question (optionally with answer options). The answer is in
        `answer` once `status` is `answered`; if still `pending`, call check_status later."""
        backend = backend_for()
        body: dict[str, Any] = {
            "kind": "question",
            "title": one_line(question.strip().splitlines()[0]) if question.strip() else "Question",
            "summary": question,
            "options": list(options or []),
            "context": {"source": SOURCE},
        }
        cp = await submit(backend, body, ctx, "ask_human")
        return await finish(backend, cp, wait_seconds, ctx)

    @server.tool(title="Check on an earlier request")
    async def check_status(
        checkpoint_id: str, wait_seconds: float | None = DEFAULT_WAIT, ctx: Context | None = None
    ) -> ToolResult:
        """The decision on an earlier request_approval or ask_human, waiting up to
        `wait_seconds` (max 55) for it."""
        backend = backend_for()
        try:
            cp = await backend.get(checkpoint_id)
        except (UnknownCheckpoint, RequestRefused):
            raise ToolError(
                f"No request {checkpoint_id!r} of yours: use the checkpoint_id that "
                "request_approval or ask_human returned."
            ) from None
        except PortalUnavailable as exc:
            raise ToolError(
                f"Could not check on {checkpoint_id!r}: {exc.cause}. Do not go ahead without "
                "an approval. " + _then(exc, "call check_status again")
            ) from None
        return await finish(backend, cp, wait_seconds, ctx)

    return server


# --- stdio: `hitl mcp` -------------------------------------------------------------------------


class ClientBackend:
    """The tools over the portal's REST API (`HitlClient`, async). One run per process: the
    MCP session. A failure that is not the request's becomes PortalUnavailable."""

    def __init__(self, client: HitlClient):
        self.client = client
        self.run_id: str | None = None
        # Starting the session's run again after a lost answer replays it: one run.
        self._run_key = f"mcp-session:{uuid.uuid4()}"
        # The Idempotency-Key of each create whose answer an outage lost: the model asking
        # again with the same arguments gets that checkpoint, not a second one.
        self._unsettled: dict[str, str] = {}

    def _failure(self, exc: HitlError) -> Exception:
        about_the_request = isinstance(exc, ApiError) and 400 <= exc.status < 500
        if about_the_request and exc.status not in _NOT_THE_REQUESTS:
            return RequestRefused(f"{exc.detail} {exc.errors or ''}".strip())
        return portal_unavailable(exc, self.client.base_url)

    async def request_approval(self, body: dict[str, Any], client_name: str) -> dict:
        try:
            if self.run_id is None:
                run = await self.client.astart_run(
                    f"MCP session ({client_name})",
                    metadata={"source": SOURCE},
                    idempotency_key=self._run_key,
                )
                self.run_id = run.id
            request = {**body, "run": self.run_id}
            fingerprint = json.dumps(request, sort_keys=True)
            key = self._unsettled.get(fingerprint) or str(uuid.uuid4())
            try:
                cp = await self.client.arequest(
                    "POST", "checkpoints/", json=request, headers={"Idempotency-Key": key}
                )
            except HitlError as exc:
                if not isinstance(exc, ApiError) or exc.status >= 500:
                    self._unsettled[fingerprint] = key  # it may have been made
                raise
            self._unsettled.pop(fingerprint, None)
            return cp
        except HitlError as exc:
            raise self._failure(exc) from None

    async def get(self, checkpoint_id: str) -> dict:
        try:
            return await self.client.arequest("GET", f"checkpoints/{checkpoint_id}/")
        except ApiError as exc:
            if exc.status in (400, 404):
                raise UnknownCheckpoint(checkpoint_id) from None
            raise self._failure(exc) from None
        except HitlError as exc:
            raise self._failure(exc) from None

    async def wait(self, checkpoint_id: str, seconds: float) -> dict:
        try:
            return await self.client.arequest(
                "GET",
                f"checkpoints/{checkpoint_id}/wait",
                params={"timeout": f"{seconds:.1f}"},
                timeout=seconds + 15,
            )
        except HitlError as exc:
            raise self._failure(exc) from None


def serve_stdio(client: HitlClient) -> None:
    """`hitl mcp`: serve the tools on stdin/stdout until the host closes them. Logs go to
    stderr: stdout is the protocol."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    backend = ClientBackend(client)
    build_server(lambda: backend).run("stdio")
