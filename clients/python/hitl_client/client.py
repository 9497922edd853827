"""HitlClient: the agent's side of the HITL Portal API (stdlib + httpx; no Django).

    client = HitlClient("https://hitl.example.com", api_key="hitl_a…")
    run = client.start_run("Clean up the logs volume")
    cp = client.request_approval("Delete 3 files", tool="delete_files", args={"paths": [...]},
                                 risk="high")
    cp.wait()
    if cp.approved:
        delete_files(**cp.approved_args)          # the args as approved, maybe edited
    client.complete_run(result={"deleted": 3})

Every POST carries an Idempotency-Key, so network failures and 5xx/429 answers are retried
safely (the portal replays the first response instead of creating a second checkpoint): through
an outage of the portal or its database, until `outage_timeout`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from hitl_client._transport import RETRY_STATUSES as RETRY_STATUSES  # re-exported, as before
from hitl_client._transport import (
    Call,
    Flow,
    Pause,
    acheck_server,
    asend,
    check_server,
    outage,
    send,
    twins,
)
from hitl_client._version import __version__
from hitl_client.decorators import require_approval_decorator
from hitl_client.errors import HitlError, WaitTimeout
from hitl_client.models import Checkpoint, Run

MAX_WAIT_SLICE = 55.0  # the server caps one long-poll at 60 s


class HitlClient:
    """Blocking methods, and for the agent's side their asyncio twins (`arequest`,
    `astart_run`, `arequest_approval`, `aask`, `await_checkpoint`). A pair shares one
    implementation: `request`/`arequest` the retry policy, the others a flow made into both by
    `twins` (see `hitl_client._transport`)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        outage_timeout: float | None = 120.0,
        user_agent: str | None = None,
        transport: httpx.BaseTransport | None = None,
        anonymous: bool = False,
    ):
        """A request that meets a network error, 429 or 5xx is retried `retries` times (with
        backoff: about 8 s). A POST (a create, a decision, a redemption: each carries an
        Idempotency-Key, so a retry never acts twice) keeps retrying through an outage of the
        portal or its database until `outage_timeout` seconds have passed (None: until it
        answers), as `wait()` does until its own timeout; then the last error is raised.

        `anonymous=True` allows no key: then no Authorization header is sent, and only the
        public endpoints answer (the ledger's head, keys and consistency proofs: what a
        witness, `hitl verify` without --event or --full, needs)."""
        base_url = base_url or os.environ.get("HITL_URL", "http://127.0.0.1:8000")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or os.environ.get("HITL_API_KEY") or os.environ.get("HITL_TOKEN")
        if not self.api_key and not anonymous:
            raise HitlError("no API key: pass api_key= (hitl: --key) or set HITL_API_KEY")
        self.timeout = timeout
        self.retries = retries
        self.outage_timeout = outage_timeout
        self.run: Run | None = None
        self._headers = {
            "User-Agent": user_agent or f"hitl-client/{__version__}",
            "Accept": "application/json",
        }
        if self.api_key:
            # A made-up bearer is refused (401) even where no credentials are needed.
            self._headers["Authorization"] = f"Bearer {self.api_key}"
        self._http = httpx.Client(
            base_url=self.base_url + "/api/v1/",
            headers=self._headers,
            timeout=timeout,
            transport=transport,
        )
        self._ahttp: httpx.AsyncClient | None = None
        # Set on first contact, when the server's API version is known to be one we speak.
        self._server_checked = False

    # --- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    async def aclose(self) -> None:
        if self._ahttp is not None:
            await self._ahttp.aclose()

    def __enter__(self) -> HitlClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _async_http(self) -> httpx.AsyncClient:
        if self._ahttp is None:
            self._ahttp = httpx.AsyncClient(
                base_url=self.base_url + "/api/v1/", headers=self._headers, timeout=self.timeout
            )
        return self._ahttp

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call (`path` under /api/v1/, `kwargs` httpx's), retried on network errors,
        429 and 5xx (a POST until `outage_timeout`); returns the JSON body, raises ApiError
        (NotFound, ConflictError) or HitlError; before the first, IncompatibleServer if the
        server's API version is not one this client speaks. Every method of this client goes
        through here (or `arequest`)."""
        if not self._server_checked:
            self._server_checked = check_server(self._http, self.base_url)
        call = Call(method, path, kwargs)
        return send(self._http, call, self.retries, self.outage_timeout)

    async def arequest(self, method: str, path: str, **kwargs: Any) -> Any:
        """`request`, awaited."""
        if not self._server_checked:
            self._server_checked = await acheck_server(self._async_http(), self.base_url)
        call = Call(method, path, kwargs)
        return await asend(self._async_http(), call, self.retries, self.outage_timeout)

    # --- runs -------------------------------------------------------------------------------

    def _start_run(
        self,
        task: str,
        *,
        external_id: str = "",
        metadata: dict | None = None,
        complete_when_resolved: bool = False,
        idempotency_key: str | None = None,
    ) -> Flow[Run]:
        """Start a run of this agent; later calls default to it (`client.run`).
        `complete_when_resolved`: a one-question run, completed by the portal once its
        checkpoints are resolved (what `hitl request` without --run starts)."""
        body = {"task": task, "external_id": external_id, "metadata": metadata or {}}
        if complete_when_resolved:
            body["complete_when_resolved"] = True
        options: dict[str, Any] = {"json": body}
        if idempotency_key:
            options["headers"] = {"Idempotency-Key": idempotency_key}
        self.run = Run((yield Call("POST", "runs/", options)))
        return self.run

    start_run, astart_run = twins(_start_run)

    def _ensure_run(
        self, external_id: str, task: str, *, metadata: dict | None = None
    ) -> Flow[Run]:
        """This agent's unfinished run named `external_id` (a conversation, a thread, a
        session), else a new one; later calls default to it (`client.run`)."""
        page = yield Call("GET", "runs/", {"params": {"external_id": external_id, "limit": 20}})
        for data in page["results"]:
            if data["status"] in ("running", "waiting"):
                self.run = Run(data)
                return self.run
        # Concurrent first calls (parallel tool calls) start one run: the same key replays it.
        return (
            yield from self._start_run(
                task,
                external_id=external_id,
                metadata=metadata,
                idempotency_key=f"run:{external_id}"[:255],
            )
        )

    ensure_run, aensure_run = twins(_ensure_run)

    def start_hosted_run(self, agent: str, task: str, input: dict | None = None) -> Run:
        """With a person's token: start a hosted agent."""
        return Run(
            self.request("POST", "runs/", json={"agent": agent, "task": task, "input": input or {}})
        )

    def get_run(self, run_id: str) -> Run:
        return Run(self.request("GET", f"runs/{run_id}/"))

    def _run_id(self, run: Run | str | None) -> str:
        if isinstance(run, Run):
            return run.id
        if run:
            return str(run)
        if self.run is None:
            raise HitlError("no run: call start_run() first or pass run=")
        return self.run.id

    def complete_run(
        self,
        run: Run | str | None = None,
        *,
        status: str = "completed",
        result: Any = None,
        error: str = "",
    ) -> Run:
        body = {"status": status, "result": result, "error": error}
        done = Run(self.request("POST", f"runs/{self._run_id(run)}/complete/", json=body))
        if self.run is not None and self.run.id == done.id:
            self.run = done
        return done

    def log(
        self,
        message: str,
        *,
        kind: str = "log",
        data: dict | None = None,
        run: Run | str | None = None,
    ) -> dict:
        """A line in the run's timeline (reviewers see it next to the checkpoint)."""
        body = {"kind": kind, "message": message, "data": data or {}}
        return self.request("POST", f"runs/{self._run_id(run)}/events/", json=body)

    # --- checkpoints ------------------------------------------------------------------------

    def _request_approval(
        self,
        title: str,
        *,
        tool: str | None = None,
        args: dict | None = None,
        action: dict | None = None,
        summary: str = "",
        risk: str = "medium",
        context: dict | None = None,
        reasoning: list[str] | None = None,
        artifacts: list[dict] | None = None,
        expires_in: int | None = None,
        role_hint: str = "",
        kind: str = "approval",
        options: list | None = None,
        run: Run | str | None = None,
        idempotency_key: str | None = None,
        external_id: str = "",
        allowed_outcomes: list[str] | None = None,
        reject_options: list[dict] | None = None,
        args_schema: dict | None = None,
        source: str = "",
        confidence: float | None = None,
    ) -> Flow[Checkpoint]:
        """Ask a human to approve `tool(**args)`. Returns at once (pending, or already decided
        when a policy decides it automatically: `cp.automatic`); `.wait()`.

        `external_id`: your own id for the request; asking again with the same id and body
        returns the same checkpoint (a re-run asks once). `allowed_outcomes`: what reviewers
        may choose (approve, modify, reject, answer); `reject_options`: named reasons
        ([{value, label, description?, prompt_fill?}]); `args_schema`: the JSON Schema edits
        must fit; `source`: the integration asking (`context.source`). `confidence`: your own
        confidence in the action, 0 to 1; policies may approve confident, low-risk requests
        without a person."""
        if confidence is not None and not 0 <= confidence <= 1:
            raise ValueError("confidence is a number from 0 to 1")
        if run is None and self.run is None:
            yield from self._start_run(title)
        body: dict[str, Any] = {
            "run": self._run_id(run),
            "kind": kind,
            "title": title,
            "summary": summary,
            "risk": risk,
            "role_hint": role_hint,
        }
        if action is None and tool:
            action = {"tool": tool, "args": args or {}}
        if action is not None and args_schema is not None:
            action = {**action, "args_schema": args_schema}
        if action is not None:
            body["action"] = action
        ctx = dict(context or {})
        if source:
            ctx["source"] = source
        if reasoning:
            ctx["reasoning"] = list(reasoning)
        if ctx:
            body["context"] = ctx
        if artifacts:
            body["artifacts"] = artifacts
        if expires_in:
            body["expires_in"] = int(expires_in)
        if options:
            body["options"] = options
        if external_id:
            body["external_id"] = external_id
        if allowed_outcomes:
            body["allowed_outcomes"] = list(allowed_outcomes)
        if reject_options:
            body["reject_options"] = list(reject_options)
        if confidence is not None:
            body["confidence"] = float(confidence)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return Checkpoint(
            self, (yield Call("POST", "checkpoints/", {"json": body, "headers": headers}))
        )

    request_approval, arequest_approval = twins(_request_approval)

    def _ask(
        self,
        question: str,
        *,
        options: list | None = None,
        summary: str = "",
        timeout: float | None = None,
        run: Run | str | None = None,
        **kwargs: Any,
    ) -> Flow[str]:
        """Ask a human a question and return the answer (raises ApprovalRejected if they
        decline or nobody answers before the deadline). Other keywords: `request_approval`'s."""
        cp = yield from self._request_approval(
            question, kind="question", options=options, summary=summary, run=run, **kwargs
        )
        cp.data = (yield from self._wait(cp.id, timeout=timeout)).data
        cp.raise_for_outcome()
        return cp.answer or ""

    ask, aask = twins(_ask)

    def get_checkpoint(self, checkpoint_id: str) -> Checkpoint:
        return Checkpoint(self, self.request("GET", f"checkpoints/{checkpoint_id}/"))

    def find_checkpoint(self, external_id: str) -> Checkpoint | None:
        """This agent's checkpoint with your own id `external_id`, or None."""
        page = self.request("GET", "checkpoints/", params={"external_id": external_id})
        return Checkpoint(self, page["results"][0]) if page["results"] else None

    def artifact_content(self, artifact_id: str) -> bytes:
        """The bytes of an artifact (`GET /artifacts/{id}/content/`)."""
        return self.request("GET", f"artifacts/{artifact_id}/content/", raw=True)

    def _wait(self, checkpoint_id: str, timeout: float | None = None) -> Flow[Checkpoint]:
        """Long-poll until decided; `timeout` None waits until it is resolved (the portal
        expires it at its deadline). Raises WaitTimeout if still pending after `timeout`.

        A portal that is down or restarting (connection refused, 5xx, 429) does not end the
        wait: it is retried with capped backoff (1 s doubling to 30 s) until `timeout` runs
        out (forever with None), and the last error is raised only then. A refusal (4xx:
        no such checkpoint, a revoked key) is raised at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = 1.0
        while True:
            remaining = MAX_WAIT_SLICE if deadline is None else deadline - time.monotonic()
            piece = max(0.0, min(MAX_WAIT_SLICE, remaining))
            options = {"params": {"timeout": f"{piece:.1f}"}, "timeout": piece + 15}
            try:
                data = yield Call("GET", f"checkpoints/{checkpoint_id}/wait", options)
            except HitlError as exc:
                left = None if deadline is None else deadline - time.monotonic()
                if not outage(exc) or (left is not None and left <= 0):
                    raise
                yield Pause(backoff if left is None else min(backoff, left))
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            cp = Checkpoint(self, data)
            if not cp.pending:
                return cp
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(cp)

    wait, await_checkpoint = twins(_wait, "await_checkpoint")

    def cancel(self, checkpoint_id: str, reason: str = "") -> Checkpoint:
        return Checkpoint(
            self,
            self.request("POST", f"checkpoints/{checkpoint_id}/cancel/", json={"reason": reason}),
        )

    def upload_artifact(
        self, source: str | Path | bytes, *, name: str | None = None, kind: str = "file"
    ) -> dict:
        """Upload a file; returns {id, ref, sha256, size}. Use `ref` in `artifacts=[{"name":
        ..., "kind": ..., "ref": ref}]`."""
        if isinstance(source, bytes):
            content, filename = source, name or "artifact"
        else:
            path = Path(source)
            content, filename = path.read_bytes(), name or path.name
        files = {"file": (filename, content)}
        return self.request(
            "POST", "artifacts/", files=files, data={"name": filename, "kind": kind}
        )

    # --- receipts and the ledger -------------------------------------------------------------

    def _redeem(
        self,
        receipt: str | None,
        *,
        tool: str | None = None,
        args: dict | None = None,
        action: dict | None = None,
    ) -> Flow[dict]:
        """Spend an approval's receipt right before acting: `tool`/`args` (or `action`) must be
        exactly what you are about to run. Raises ConflictError (409) if it was already
        redeemed (by another replica: do not act), expired or is for another action (ask
        again); returns the redemption."""
        if not receipt:
            raise HitlError("no receipt: only an approved checkpoint has one (cp.receipt)")
        if action is None:
            action = {"tool": tool, "args": args or {}}
        body = {"receipt": receipt, "action": action}
        return (yield Call("POST", "receipts/redeem/", {"json": body}))

    redeem, aredeem = twins(_redeem)

    def verify_receipt(self, receipt: str, *, action: dict | None = None) -> dict:
        """Check a receipt without spending it: {valid, problem, claims, ...}."""
        body: dict[str, Any] = {"receipt": receipt}
        if action is not None:
            body["action"] = action
        return self.request("POST", "receipts/verify/", json=body)

    def ledger_head(self) -> dict:
        """The latest signed tree head of the portal's audit ledger."""
        return self.request("GET", "ledger/head")

    def verify_ledger(self, state_path: str | Path | None = None, **options: Any):
        """What `hitl verify` does (see `hitl_client.ledger.verify_ledger`): returns a Report."""
        from hitl_client.ledger import default_state_path, verify_ledger

        path = Path(state_path) if state_path else default_state_path(self.base_url)
        return verify_ledger(self, state_path=path, **options)

    # --- people -----------------------------------------------------------------------------

    def queue(self, limit: int = 50) -> list[dict]:
        """With a person's token: their review queue, soonest deadline first."""
        return self.request("GET", "queue/", params={"limit": limit})["results"]

    def decide(
        self,
        checkpoint_id: str,
        outcome: str,
        *,
        comment: str = "",
        args: dict | None = None,
        answer: str = "",
        action_sha256: str = "",
    ) -> dict:
        """With a person's token: approve / reject / modify (edited `args`) / answer.
        `action_sha256` (the checkpoint's `current_action_sha256` you reviewed) makes the
        portal refuse the vote with 409 if another reviewer edited the action since."""
        body: dict[str, Any] = {"outcome": outcome, "comment": comment, "answer": answer}
        if action_sha256:
            body["action_sha256"] = action_sha256
        if args is not None:
            body["action"] = {"args": args}
        return self.request("POST", f"checkpoints/{checkpoint_id}/decision/", json=body)

    # --- decorator --------------------------------------------------------------------------

    def require_approval(self, fn=None, **options: Any):
        """Decorate a tool function (sync or async): each call asks for approval, waits, and
        runs with the approved (maybe edited) arguments; a rejection raises ApprovalRejected
        (or, with on_reject="return", returns a falsy Rejection). Options: title (str with
        {arg} placeholders, or a callable), risk, tool, summary, timeout, on_reject,
        role_hint, expires_in."""
        return require_approval_decorator(self, fn, **options)
