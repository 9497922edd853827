"""`hitl hook claude-code` as Claude Code runs it: a subprocess, the hook input on stdin, the
decision on stdout, exit 0 always (checked against the typed hook definitions of
`claude-agent-sdk`); and end to end with the real Claude Code CLI that package bundles, a
scripted model standing in for the Anthropic API on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.models import Run
from approvals.models import Checkpoint
from approvals.transitions import checkpoint_expire
from audit.models import AuditEvent
from hitl_client import HitlClient, hooks
from tests.code import pythonpath
from tests.integrations.fake_anthropic import FakeAnthropic
from tests.integrations.helpers import decide, run_in_thread, wait_for_checkpoint
from tests.receivers import HttpReceiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
PRE_TOOL_USE_KEYS = {
    "hookEventName",
    "permissionDecision",
    "permissionDecisionReason",
    "updatedInput",
}


def event(**extra) -> dict:
    return {
        "session_id": "4f6bf44c-aaaa",
        "transcript_path": "/home/dev/.claude/projects/shop/4f6b.jsonl",
        "cwd": "/home/dev/shop",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Edit",
        "tool_input": {
            "file_path": "/home/dev/shop/app.py",
            "old_string": "DEBUG = True",
            "new_string": "DEBUG = False",
            "replace_all": False,
        },
        "tool_use_id": "toolu_01",
        "prompt_id": "p-1",
        "effort": {"level": "high"},  # unknown fields are ignored
        **extra,
    }


def hook(portal, key, payload, *args) -> tuple[dict, subprocess.CompletedProcess]:
    env = {
        **os.environ,
        "HITL_URL": portal.url if portal else "http://127.0.0.1:9",
        "HITL_API_KEY": key,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "hitl_client.cli", "hook", "claude-code", *args],
        input=payload if isinstance(payload, str) else json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    if answer:
        assert set(answer) == {"hookSpecificOutput"}
    return answer, proc


def out(answer) -> dict:
    specific = answer["hookSpecificOutput"]
    if specific["hookEventName"] == "PreToolUse":
        assert set(specific) <= PRE_TOOL_USE_KEYS
        assert specific["permissionDecision"] in ("allow", "deny", "ask", "defer")
    return specific


def test_the_typed_definitions_match_what_we_read_and_write():
    from claude_agent_sdk import types

    assert {"session_id", "cwd", "transcript_path", "permission_mode"} <= set(
        types.BaseHookInput.__annotations__
    )
    assert {"tool_name", "tool_input", "tool_use_id"} <= set(
        types.PreToolUseHookInput.__annotations__
    )
    assert set(types.PreToolUseHookSpecificOutput.__annotations__) >= PRE_TOOL_USE_KEYS


def test_an_edit_comes_back_as_the_whole_typed_input(live_portal, agent_key, reviewer):
    answer = run_in_thread(hook, live_portal, agent_key, event())
    cp = wait_for_checkpoint()
    assert cp.title == "Edit: /home/dev/shop/app.py"
    assert cp.context["source"] == "claude-code" and cp.context["tool_use_id"] == "toolu_01"
    assert cp.external_id == "claude-code:4f6bf44c-aaaa:toolu_01"
    assert cp.run.external_id == "claude-code:4f6bf44c-aaaa"
    edited = {**cp.action["args"], "new_string": "DEBUG = env('DEBUG')", "replace_all": True}
    decide(live_portal, reviewer, cp, "modify", args=edited, comment="read it from env")
    specific = out(answer.get()[0])
    assert specific["permissionDecision"] == "allow"
    assert specific["updatedInput"] == edited  # complete, booleans still booleans
    assert specific["permissionDecisionReason"].startswith("Approved by rita: read it from env")

    # The same tool use again (a retried hook): the same checkpoint and decision.
    again = out(hook(live_portal, agent_key, event())[0])
    assert again["updatedInput"] == edited
    assert Checkpoint.objects.count() == 1 and Run.objects.count() == 1


def test_approve_and_reject(live_portal, agent_key, reviewer):
    bash = {"tool_name": "Bash", "tool_input": {"command": "rm -rf build/", "timeout": 120000}}
    approved = run_in_thread(hook, live_portal, agent_key, event(**bash, tool_use_id="t1"))
    cp = wait_for_checkpoint()
    decide(live_portal, reviewer, cp, "approve")
    specific = out(approved.get()[0])
    assert specific["permissionDecision"] == "allow" and "updatedInput" not in specific

    rejected = run_in_thread(hook, live_portal, agent_key, event(**bash, tool_use_id="t2"))
    cp2 = wait_for_checkpoint(exclude=[cp.pk])
    assert cp2.run_id == cp.run_id  # one session, one run
    decide(live_portal, reviewer, cp2, "reject", comment="never rm -rf here")
    specific = out(rejected.get()[0])
    assert specific["permissionDecision"] == "deny"
    assert specific["permissionDecisionReason"] == "Rejected by rita: never rm -rf here"


def test_permission_request_answers_with_a_decision(live_portal, agent_key, reviewer):
    payload = event(hook_event_name="PermissionRequest", permission_suggestions=[])
    del payload["tool_use_id"]
    answer = run_in_thread(hook, live_portal, agent_key, payload)
    cp = wait_for_checkpoint()
    assert cp.external_id.startswith("claude-code:4f6bf44c-aaaa:permission:")
    decide(live_portal, reviewer, cp, "reject", comment="releases go through CI")
    assert answer.get()[0] == {
        "hookSpecificOutput": {
            "hookEventName": "PermissionRequest",
            "decision": {"behavior": "deny", "message": "Rejected by rita: releases go through CI"},
        }
    }


def test_a_timeout_never_allows_and_withdraws_the_request(live_portal, agent_key):
    started = time.monotonic()
    answer, _ = hook(live_portal, agent_key, event(), "--timeout", "1")
    assert time.monotonic() - started < 30
    specific = out(answer)
    assert specific["permissionDecision"] == "ask"
    assert "/review/" in specific["permissionDecisionReason"]
    cp = Checkpoint.objects.get()
    assert (
        cp.status == "cancelled"
        and cp.resolution_reason == "hook timed out; decided in Claude Code"
    )
    assert AuditEvent.objects.filter(verb="checkpoint.cancelled", target_id=str(cp.pk)).exists()

    # The same tool use again: Claude Code decides, as it did when the hook gave up.
    again, _ = hook(live_portal, agent_key, event(), "--timeout", "1")
    assert out(again)["permissionDecision"] == "ask" and Checkpoint.objects.count() == 1

    denied, _ = hook(live_portal, agent_key, event(tool_use_id="t9"), "--timeout", "0.5",
                     "--on-timeout", "deny")  # fmt: skip
    assert out(denied)["permissionDecision"] == "deny"


def test_errors_fail_closed(live_portal, agent_key):
    unreachable, _ = hook(None, agent_key, event())
    specific = out(unreachable)
    assert specific["permissionDecision"] == "deny"
    assert "unavailable" in specific["permissionDecisionReason"]

    bad_key, _ = hook(live_portal, "hitl_a_bad_key", event())
    assert out(bad_key)["permissionDecision"] == "deny"

    asked, _ = hook(live_portal, "hitl_a_bad_key", event(), "--on-error", "ask")
    assert out(asked)["permissionDecision"] == "ask"

    garbage, _ = hook(live_portal, agent_key, "not json")
    assert out(garbage)["permissionDecision"] == "deny"

    other, _ = hook(live_portal, agent_key, {**event(), "hook_event_name": "Stop"})
    assert other == {}

    # A server that answers 200 with JSON that is not the portal's (a proxy, a wrong URL): the
    # client's first contact finds no API version there (docs/client.md, "Versions"), and the
    # hook still denies with exit 0.
    stranger = HttpReceiver(reply={"ok": True})
    try:
        odd, _ = hook(SimpleNamespace(url=stranger.base), agent_key, event())
    finally:
        stranger.stop()
    assert out(odd)["permissionDecision"] == "deny"
    assert "does not state its API version" in out(odd)["permissionDecisionReason"]
    assert stranger.requests  # it was asked, and answered

    # A URL httpx cannot even parse.
    broken_url, _ = hook(SimpleNamespace(url="http://[::1"), agent_key, event())
    assert out(broken_url)["permissionDecision"] == "deny"
    asked_anyway, _ = hook(SimpleNamespace(url="http://[::1"), agent_key, event(),
                           "--on-error", "ask")  # fmt: skip
    assert out(asked_anyway)["permissionDecision"] == "ask"
    assert not Checkpoint.objects.exists()


class LostWhileWaiting(HitlClient):
    """A portal client that creates the checkpoint, then fails reading the wait's answer."""

    def wait(self, checkpoint_id, timeout=None):
        raise KeyError("status")


def test_a_failure_after_asking_denies_and_withdraws_the_request(live_portal, agent_key):
    answer = hooks.handle(
        event(),
        lambda: LostWhileWaiting(live_portal.url, agent_key, timeout=10, retries=0),
        timeout=30,
        on_timeout="ask",
        on_error="deny",
    )
    specific = out(answer)
    assert specific["permissionDecision"] == "deny"
    assert "KeyError" in specific["permissionDecisionReason"]
    cp = Checkpoint.objects.get()
    assert (cp.status, cp.resolution_reason) == ("cancelled", hooks.FAILED)

    # The same tool use again: the hook answers as --on-error says, as it did then.
    again, _ = hook(live_portal, agent_key, event(), "--on-error", "ask")
    assert out(again)["permissionDecision"] == "ask" and Checkpoint.objects.count() == 1


def test_an_expired_request_is_denied(live_portal, agent_key):
    answer = run_in_thread(hook, live_portal, agent_key, event())
    cp = wait_for_checkpoint()
    Checkpoint.objects.filter(pk=cp.pk).update(deadline=cp.created_at)
    assert checkpoint_expire(cp.pk) == "expired"
    specific = out(answer.get()[0])
    assert specific["permissionDecision"] == "deny"
    assert specific["permissionDecisionReason"].startswith("Not approved in time: No decision")


# --- the real Claude Code CLI -----------------------------------------------------------------


def claude_code(portal, key, tool_input: dict, workdir: Path):
    """Run the Claude Code CLI bundled in claude-agent-sdk, headless (`-p`), with the hook in its
    settings and a scripted model that asks to run `Bash(tool_input)` once."""
    import claude_agent_sdk

    cli = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"  # the CLI it ships
    hook_command = f"{sys.executable} -m hitl_client.cli hook claude-code --timeout 60"
    settings = {
        "hooks": {
            "PreToolUse": [
                {
                    "matcher": "Bash",
                    "hooks": [{"type": "command", "command": hook_command, "timeout": 90}],
                }
            ]
        }
    }
    with FakeAnthropic("Bash", tool_input) as model:
        env = {
            **os.environ,
            "HOME": str(workdir),
            "ANTHROPIC_BASE_URL": model.url,
            "ANTHROPIC_API_KEY": "sk-scripted",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "HITL_URL": portal.url,
            "HITL_API_KEY": key,
            "PYTHONPATH": pythonpath(),
        }
        proc = subprocess.run(
            [str(cli), "-p", "do it", "--output-format", "json", "--max-turns", "3",
             "--settings", json.dumps(settings)],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return model.tool_results()


def test_claude_code_runs_the_reviewers_edit(live_portal, agent_key, reviewer, tmp_path):
    original = {"command": "echo original > out.txt", "description": "write a file"}
    results = run_in_thread(claude_code, live_portal, agent_key, original, tmp_path)
    cp = wait_for_checkpoint(timeout=90)
    assert cp.action == {"tool": "Bash", "args": original}
    assert cp.context["source"] == "claude-code" and cp.context["cwd"] == str(tmp_path)
    decide(
        live_portal, reviewer, cp, "modify", args={**original, "command": "echo edited > out.txt"}
    )
    (result,) = results.get(timeout=150)
    assert result["is_error"] is False
    assert (tmp_path / "out.txt").read_text() == "edited\n"  # what ran is what was approved


def test_claude_code_is_told_the_rejection(live_portal, agent_key, reviewer, tmp_path):
    results = run_in_thread(
        claude_code, live_portal, agent_key, {"command": "touch nope.txt"}, tmp_path
    )
    cp = wait_for_checkpoint(timeout=90)
    decide(live_portal, reviewer, cp, "reject", comment="no new files in the repo root")
    (result,) = results.get(timeout=150)
    assert result["is_error"] is True
    assert "Rejected by rita: no new files in the repo root" in json.dumps(result["content"])
    assert not (tmp_path / "nope.txt").exists()
