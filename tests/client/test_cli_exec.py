"""`hitl exec` and the exit codes, with the console script as installed, against a live
portal: what runs is exactly what a reviewer approved (their edit after a modify), a
rejection, an expiry or a timeout runs nothing, and every command that did what it was asked
exits 0."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from approvals.models import Checkpoint
from approvals.transitions import checkpoint_decide
from core.models import Receipt
from hitl_client.approved_command import ARGS_SCHEMA
from hitl_client.ledger import action_sha256
from tests.client.test_cli import hitl, start_hitl
from tests.integrations.helpers import decide, wait_for_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RECORD = """\
import json, sys
with open(sys.argv[1], "w") as f:
    json.dump(sys.argv[2:], f)
sys.exit(int(sys.argv[2]))
"""


def recorder(tmp_path: Path, code: str, *words: str) -> tuple[list[str], Path]:
    """A command that writes its arguments (after the file) to a file and exits with `code`."""
    script = tmp_path / "record.py"
    script.write_text(RECORD)
    out = tmp_path / "ran.json"
    return [sys.executable, str(script), str(out), code, *words], out


def finish(proc) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr


def test_exec_runs_exactly_the_argv_the_reviewer_approved(
    live_portal, agent_key, reviewer, tmp_path
):
    asked, out = recorder(tmp_path, "3", "DROP TABLE users_old")
    proc = start_hitl(live_portal, agent_key, "exec", "--risk", "high", "--", *asked, cwd=tmp_path)
    cp = wait_for_checkpoint()
    assert cp.action == {"tool": "exec", "args": {"argv": asked}, "args_schema": ARGS_SCHEMA}
    assert cp.title == f"Run {shlex.join(asked)}" and cp.risk == "high"
    assert cp.context == {"cwd": str(tmp_path.resolve()), "source": "hitl-exec"}
    # The schema keeps a reviewer's edit a list of strings.
    decide(live_portal, reviewer, cp, "modify", args={"argv": "rm -rf /"}, expect=400)
    decide(live_portal, reviewer, cp, "modify", args={"argv": []}, expect=400)
    edited = [*asked[:3], "42", "DROP TABLE users_old_2"]
    decide(live_portal, reviewer, cp, "modify", args={"argv": edited})

    code, stdout, stderr = finish(proc)
    assert code == 42, stderr  # the command's own exit code
    assert json.loads(out.read_text()) == ["42", "DROP TABLE users_old_2"]  # the edit ran
    assert "approved by rita WITH EDITS" in stderr
    assert f"asked:    {shlex.join(asked)}" in stderr
    assert f"approved: {shlex.join(edited)}" in stderr
    assert stdout == ""  # stdout is the command's
    receipt = Receipt.objects.get()
    assert receipt.redeemed_at is not None
    # spent on exactly what ran, by the agent
    assert receipt.redemption["action_sha256"] == action_sha256("exec", {"argv": edited})
    assert receipt.redeemed_by.startswith("agent:")


def test_exec_runs_the_request_as_asked_when_approved_without_edits(
    live_portal, agent_key, reviewer, tmp_path
):
    asked, out = recorder(tmp_path, "0", "it's", "two words", "$HOME")
    proc = start_hitl(live_portal, agent_key, "exec", "--title", "Record", "--", *asked)
    cp = wait_for_checkpoint()
    assert cp.title == "Record"
    decide(live_portal, reviewer, cp, "approve")
    code, _, stderr = finish(proc)
    assert code == 0, stderr
    assert json.loads(out.read_text()) == ["0", "it's", "two words", "$HOME"]  # no shell
    assert f"approved by rita; running: {shlex.join(asked)}" in stderr


def test_exec_runs_nothing_unless_approved(live_portal, agent_key, reviewer, tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    from approvals.transitions import checkpoint_expire

    asked, out = recorder(tmp_path, "0")
    proc = start_hitl(live_portal, agent_key, "exec", "--", *asked)
    cp = wait_for_checkpoint()
    decide(live_portal, reviewer, cp, "reject", comment="use the staging DB")
    code, _, stderr = finish(proc)
    assert code == 3 and "rejected by rita: use the staging DB; nothing ran" in stderr

    proc = start_hitl(live_portal, agent_key, "exec", "--", *asked)
    cp = wait_for_checkpoint(exclude=[cp.pk])
    checkpoint_expire(cp.pk, now=timezone.now() + timedelta(hours=2))
    code, _, stderr = finish(proc)
    assert code == 4 and "expired" in stderr and "nothing ran" in stderr

    timed_out = hitl(live_portal, agent_key, "exec", "--timeout", "0.5", "--", *asked, check=6)
    assert "no decision within --timeout: the request is withdrawn" in timed_out.stderr
    withdrawn = Checkpoint.objects.get(status="cancelled")
    assert withdrawn.resolution_reason == "hitl exec: no decision within --timeout; nothing ran"

    assert not out.exists()  # nothing ran, three times
    assert not Receipt.objects.filter(redeemed_at__isnull=False).exists()
    assert hitl(live_portal, agent_key, "exec", check=2).stdout == ""  # no command: usage


def test_request_wait_says_approved_with_edits_and_prints_the_approved_action(
    live_portal, agent_key, reviewer
):
    args = ["request", "--title", "Drop", "--tool", "sql", "--args", '{"sql": "DROP TABLE a"}']
    proc = start_hitl(live_portal, agent_key, *args, "--wait", "--print", "action")
    cp = wait_for_checkpoint()
    decide(live_portal, reviewer, cp, "modify", args={"sql": "DROP TABLE a_old"})
    code, stdout, stderr = finish(proc)
    edited = {"tool": "sql", "args": {"sql": "DROP TABLE a_old"}}
    assert code == 8, stderr  # so `&& run-the-original` does not run
    assert json.loads(stdout) == edited
    for command in ("wait", "status"):
        again = hitl(live_portal, agent_key, command, str(cp.pk), "--print", "action", check=8)
        assert json.loads(again.stdout) == edited
    full = json.loads(hitl(live_portal, agent_key, "status", str(cp.pk), check=8).stdout)
    assert full["decision"]["outcome"] == "modify"

    plain = json.loads(hitl(live_portal, agent_key, *args, check=0).stdout)
    checkpoint_decide(plain["id"], reviewer, "approve")
    approved = hitl(live_portal, agent_key, "wait", plain["id"], "--print", "action", check=0)
    assert json.loads(approved.stdout) == {"tool": "sql", "args": {"sql": "DROP TABLE a"}}
    rejected = json.loads(hitl(live_portal, agent_key, *args, check=0).stdout)
    checkpoint_decide(rejected["id"], reviewer, "reject", comment="no")
    nothing = hitl(live_portal, agent_key, "wait", rejected["id"], "--print", "action", check=3)
    assert json.loads(nothing.stdout) is None


def test_every_command_that_did_what_it_was_asked_exits_0(
    live_portal, agent_key, reviewer, tmp_path
):
    from approvals.services import user_token_create
    from core.ledger import sequencer

    token = user_token_create(reviewer, scope="decide")
    ok = {"check": 0}
    assert hitl(live_portal, None, "--version", **ok).stdout.startswith("hitl ")
    run = json.loads(hitl(live_portal, agent_key, "run", "start", "--task", "t", **ok).stdout)
    hitl(live_portal, agent_key, "log", run["id"], "step 1", **ok)
    ask = ["request", "--title", "t", "--tool", "x", "--run", run["id"]]
    withdrawn = json.loads(hitl(live_portal, agent_key, *ask, **ok).stdout)
    cancelled = hitl(live_portal, agent_key, "cancel", withdrawn["id"], "--reason", "no", **ok)
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    # What reports an outcome reports this one with its code, as documented.
    hitl(live_portal, agent_key, "status", withdrawn["id"], check=5)

    cp = json.loads(hitl(live_portal, agent_key, *ask, **ok).stdout)
    assert [item["id"] for item in json.loads(hitl(live_portal, token, "queue", **ok).stdout)] == [
        cp["id"]
    ]
    hitl(live_portal, token, "decide", cp["id"], "approve", **ok)
    approved = json.loads(hitl(live_portal, agent_key, "wait", cp["id"], **ok).stdout)
    hitl(live_portal, agent_key, "status", cp["id"], **ok)
    receipt = approved["decision"]["receipt"]
    hitl(live_portal, agent_key, "redeem", receipt, "--tool", "x", "--args", "{}", **ok)
    hitl(live_portal, agent_key, "run", "complete", run["id"], **ok)
    sequencer.sequence_pending()
    hitl(live_portal, None, "verify", "--state", str(tmp_path / "w.json"), **ok)
    assert "Your queue is empty." in hitl(live_portal, token, "review", **ok).stdout
    hitl(live_portal, agent_key, "mcp", **ok)  # the host closed its stdin: served, done
    # `hitl hook claude-code` exits 0 on every answer: tests/integrations/test_claude_code_hook
