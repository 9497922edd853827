"""`hitl hook claude-code`: a Claude Code command hook (`PreToolUse`, `PermissionRequest`) that
asks the portal before a tool runs.

One Claude Code session is one portal run (`external_id` = its session id); one tool use is
one checkpoint (`external_id` = `claude-code:<session>:<tool_use_id>`, so a repeated hook call
gets the same checkpoint and its decision). It fails closed: it never answers `allow` on a
timeout or on any failure (the portal down or answering nonsense, a bad URL, a bug here: every
exception ends in the --on-error answer), and when it gives up it withdraws the checkpoint so
nobody approves something Claude Code already settled. It always exits 0 with JSON on stdout
(exit 1 would let the tool call proceed; exit 2 would block it without the reason).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

import httpx

from hitl_client._text import one_line
from hitl_client.client import HitlClient
from hitl_client.errors import ConflictError, HitlError, WaitTimeout
from hitl_client.models import Checkpoint

SOURCE = "claude-code"
EVENTS = ("PreToolUse", "PermissionRequest")
TIMED_OUT = "hook timed out; decided in Claude Code"
FAILED = "hook failed before a decision; settled in Claude Code"
ERROR_BUDGET = 40.0  # seconds for the portal to answer the create, retries included


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _title(tool: str, tool_input: dict) -> str:
    what = tool_input.get("command") or tool_input.get("file_path") or tool_input.get("path")
    first = str(what).strip().splitlines()[0] if what and str(what).strip() else ""
    return one_line(f"{tool}: {first}" if first else tool)


def _external_id(event: dict) -> str:
    session = event.get("session_id", "")
    if event.get("tool_use_id"):
        key = f"{SOURCE}:{session}:{event['tool_use_id']}"
    else:  # PermissionRequest carries no tool_use_id: the same request is the same checkpoint
        digest = hashlib.sha256(
            _canonical([session, event.get("tool_name"), event.get("tool_input")]).encode()
        ).hexdigest()
        key = f"{SOURCE}:{session}:permission:{digest}"
    return key[:255]


def _answer(event_name: str, behaviour: str, reason: str, updated: dict | None = None) -> dict:
    """The hook's stdout: exactly the fields Claude Code's schema allows."""
    if event_name == "PermissionRequest":
        if behaviour == "allow":
            decision: dict[str, Any] = {"behavior": "allow"}
            if updated is not None:
                decision["updatedInput"] = updated
        elif behaviour == "deny":
            decision = {"behavior": "deny", "message": reason}
        else:  # no decision: Claude Code shows its own dialog
            return {}
        return {"hookSpecificOutput": {"hookEventName": event_name, "decision": decision}}
    out: dict[str, Any] = {
        "hookEventName": event_name,
        "permissionDecision": behaviour,
        "permissionDecisionReason": reason,
    }
    if updated is not None:
        out["updatedInput"] = updated
    return {"hookSpecificOutput": out}


def _decided(event_name: str, cp: Checkpoint, tool_input: dict, on_error: str = "deny") -> dict:
    decision = cp.decision or {}
    who = decision.get("decided_by") or "the portal"
    comment = decision.get("comment") or ""
    if cp.status == "approved":
        reason = f"Approved by {who}" + (f": {comment}" if comment else "")
        args = (decision.get("action") or {}).get("args")
        if decision.get("outcome") == "modify" and isinstance(args, dict) and args != tool_input:
            # The whole edited input, JSON types kept: it replaces the tool's input.
            return _answer(event_name, "allow", reason + " (with edits)", args)
        return _answer(event_name, "allow", reason)
    if cp.status == "rejected":
        return _answer(event_name, "deny", f"Rejected by {who}: {comment}")
    if cp.status == "expired":
        return _answer(event_name, "deny", f"Not approved in time: {comment}")
    if cp.status == "cancelled" and comment == TIMED_OUT:
        # An earlier hook gave this request up (the same tool use retried, or the same
        # permission asked again): Claude Code decides, as it did then.
        return _answer(event_name, "ask", f"Not decided in the approval portal: {cp.review_url}")
    if cp.status == "cancelled" and comment == FAILED:
        # An earlier hook failed on this request and withdrew it: answer as it did.
        return _error_answer(event_name, on_error, f"the approval hook failed earlier ({comment})")
    if cp.status == "cancelled":
        return _answer(event_name, "deny", f"Withdrawn: {comment}")
    return _answer(event_name, "deny", f"Not approved ({cp.status}).")


def _ask(client: HitlClient, event: dict, risk: str) -> Checkpoint:
    tool = str(event.get("tool_name") or "tool")
    tool_input = event.get("tool_input") if isinstance(event.get("tool_input"), dict) else {}
    session = str(event.get("session_id") or "no-session")
    cwd = str(event.get("cwd") or "")
    run = client.ensure_run(
        f"{SOURCE}:{session}",
        f"Claude Code session in {cwd or 'an unknown directory'}",
        metadata={"source": SOURCE, "cwd": cwd, "transcript_path": event.get("transcript_path")},
    )
    context = {
        key: event[key]
        for key in (
            "session_id",
            "cwd",
            "transcript_path",
            "permission_mode",
            "hook_event_name",
            "tool_use_id",
            "agent_id",
            "agent_type",
        )
        if event.get(key) is not None
    }
    external_id = _external_id(event)
    return client.request_approval(
        _title(tool, tool_input),
        tool=tool,
        args=tool_input,
        risk=risk,
        context=context,
        source=SOURCE,
        run=run,
        external_id=external_id,
        idempotency_key=external_id,
        allowed_outcomes=["approve", "modify", "reject"],
    )


def handle(event: Any, client_factory, *, timeout: float, on_timeout: str, on_error: str,
           risk: str = "medium") -> dict:  # fmt: skip
    """The hook's answer for one event from Claude Code. Whatever goes wrong (the portal
    unreachable or answering something unexpected, a bad URL, a bug here) ends in the
    --on-error answer: an exception escaping would exit 1, and Claude Code lets the tool run."""
    if not isinstance(event, dict) or event.get("hook_event_name") not in EVENTS:
        return {}  # not ours: no opinion
    name = event["hook_event_name"]
    tool_input = event.get("tool_input") if isinstance(event.get("tool_input"), dict) else {}
    started = time.monotonic()
    client: HitlClient | None = None
    cp: Checkpoint | None = None
    try:
        client = client_factory()
        cp = _ask(client, event, risk)
        left = max(0.0, timeout - (time.monotonic() - started))
        cp = client.wait(cp.id, timeout=left) if cp.pending else cp
        return _decided(name, cp, tool_input, on_error)
    except WaitTimeout:
        assert client is not None and cp is not None
        try:
            return _gave_up(name, client, cp, on_timeout, on_error)
        except Exception as exc:
            return _error_answer(name, on_error, f"the approval hook failed ({_describe(exc)})")
    except Exception as exc:
        if cp is None:
            reason = f"the approval portal is unavailable ({_describe(exc)})"
        else:
            reason = f"lost the approval portal while waiting ({_describe(exc)}); {cp.review_url}"
        _withdraw(client, cp, event, exc)
        return _error_answer(name, on_error, reason)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, HitlError | OSError) and text:
        return text
    # Not a portal error: name the exception (a bare KeyError's text is only the key).
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _withdraw(client: HitlClient | None, cp: Checkpoint | None, event: dict, exc: Exception):
    """Best effort, after a failure: cancel the request (it may have been created before the
    failure) so nobody approves what Claude Code was already told. Skipped when the portal did
    not answer at all: trying again would only spend the time the answer is due in."""
    if client is None or _unreachable(exc):
        return
    try:
        if cp is None:
            cp = client.find_checkpoint(_external_id(event))
        if cp is not None and cp.pending:
            client.cancel(cp.id, reason=FAILED)
    except Exception:
        pass  # the answer (deny by default) stands either way


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, OSError | httpx.TransportError) or (
        isinstance(exc, HitlError) and isinstance(exc.__cause__, httpx.TransportError)
    )


def _gave_up(name: str, client: HitlClient, cp: Checkpoint, on_timeout: str,
             on_error: str) -> dict:  # fmt: skip
    """No decision in time: withdraw the request (a late approval must not count), then say
    what --on-timeout says; never allow. If a decision beat the withdrawal, use it."""
    try:
        client.cancel(cp.id, reason=TIMED_OUT)
    except ConflictError:
        return _decided(name, client.get_checkpoint(cp.id), {}, on_error)
    except HitlError:
        pass
    reason = f"No decision in the approval portal in time ({cp.review_url})."
    if name == "PermissionRequest":
        return _answer(name, "deny", reason) if on_timeout == "deny" else {}
    return _answer(name, on_timeout, reason)


def _error_answer(name: str, on_error: str, reason: str) -> dict:
    if name == "PermissionRequest" and on_error == "ask":
        return {}
    return _answer(name, "deny" if on_error == "deny" else "ask", reason)


def run_hook(opts, client_factory) -> int:
    """`hitl hook claude-code`: stdin → decision on stdout; always exit 0."""
    try:
        event = json.loads(sys.stdin.read() or "null")
    except Exception as exc:  # not JSON, not UTF-8: still an answer
        reason = f"hitl could not read the hook input ({_describe(exc)})"
        answer = _error_answer("PreToolUse", opts.on_error, reason)
    else:
        try:
            answer = handle(
                event,
                client_factory,
                timeout=opts.timeout,
                on_timeout=opts.on_timeout,
                on_error=opts.on_error,
                risk=opts.risk,
            )
        except Exception as exc:  # handle answers its own failures; this is the last net
            name = event.get("hook_event_name") if isinstance(event, dict) else None
            answer = _error_answer(
                name if name in EVENTS else "PreToolUse",
                opts.on_error,
                f"the approval hook failed ({_describe(exc)})",
            )
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0
