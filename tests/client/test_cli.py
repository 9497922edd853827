"""The `hitl` console script, as a coding agent runs it: a subprocess, JSON on stdout,
exit codes by outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.models import Run
from approvals.models import AuditEvent, Checkpoint
from approvals.services import user_token_create
from approvals.transitions import checkpoint_decide

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HITL = [sys.executable, "-m", "hitl_client.cli"]


def hitl(portal, key, *args, check=None):
    env = {**os.environ, "HITL_URL": portal.url, "HITL_API_KEY": key}
    proc = subprocess.run(
        [*HITL, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    if check is not None:
        assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def test_it_requests_waits_and_exits_by_outcome(live_portal, agent_key, reviewer, tmp_path):
    diff = tmp_path / "change.diff"
    diff.write_text("-old\n+new\n")
    out = hitl(
        live_portal,
        agent_key,
        "request",
        "--title",
        "Apply patch",
        "--tool",
        "patch",
        "--args",
        '{"file": "a.py", "lines": 2}',
        "--risk",
        "high",
        "--diff",
        str(diff),
        "--reason",
        "tests pass",
        check=0,
    )
    cp = json.loads(out.stdout)
    assert cp["status"] == "pending" and cp["action"]["args"] == {"file": "a.py", "lines": 2}
    row = Checkpoint.objects.get(pk=cp["id"])
    assert row.artifacts.get().inline == "-old\n+new\n"
    assert row.context["reasoning"] == ["tests pass"]

    assert hitl(live_portal, agent_key, "wait", cp["id"], "--timeout", "0.5").returncode == 6
    checkpoint_decide(cp["id"], reviewer, "reject", comment="breaks prod")
    rejected = hitl(live_portal, agent_key, "wait", cp["id"], check=3)
    assert json.loads(rejected.stdout)["decision"]["comment"] == "breaks prod"
    assert hitl(live_portal, agent_key, "status", cp["id"]).returncode == 3
    # The run `hitl request` started for the question ended with its answer.
    run = Run.objects.get(pk=cp["run"])
    assert run.status == "completed" and run.complete_when_resolved
    assert run.result == {"checkpoint": cp["id"], "status": "rejected"}
    assert AuditEvent.objects.filter(verb="run.completed", target_id=cp["run"]).exists()


def test_a_reviewer_works_the_queue_from_the_cli(live_portal, agent_key, reviewer):
    cp = json.loads(
        hitl(live_portal, agent_key, "request", "--title", "t", "--tool", "x", check=0).stdout
    )
    token = user_token_create(reviewer, scope="decide")
    queue = json.loads(hitl(live_portal, token, "queue", check=0).stdout)
    assert [item["id"] for item in queue] == [cp["id"]]
    decided = hitl(live_portal, token, "decide", cp["id"], "modify", "--args", '{"n": 2}', check=0)
    assert json.loads(decided.stdout)["checkpoint"]["decision"]["action"]["args"] == {"n": 2}
    assert Checkpoint.objects.get(pk=cp["id"]).decisions.get().channel == "cli"
    approved = hitl(live_portal, agent_key, "wait", cp["id"], check=0)
    assert json.loads(approved.stdout)["status"] == "approved"
    again = hitl(live_portal, token, "decide", cp["id"], "approve", check=1)
    assert json.loads(again.stderr)["status"] == 409


def test_it_reports_errors_as_json_with_exit_1(live_portal, agent_key):
    bad = hitl(
        live_portal, "hitl_nope_nope", "status", "00000000-0000-0000-0000-000000000000", check=1
    )
    assert json.loads(bad.stderr)["status"] == 401
    missing = hitl(
        live_portal, agent_key, "status", "00000000-0000-0000-0000-000000000000", check=1
    )
    assert json.loads(missing.stderr)["status"] == 404
    assert (
        hitl(live_portal, agent_key, "request", "--args", "{not json", "--title", "t").returncode
        == 2
    )


def test_it_expires_with_exit_4(live_portal, agent_key):
    from datetime import timedelta

    from django.utils import timezone

    from approvals.transitions import checkpoint_expire

    cp = json.loads(
        hitl(live_portal, agent_key, "request", "--title", "t", "--tool", "x", check=0).stdout
    )
    checkpoint_expire(cp["id"], now=timezone.now() + timedelta(hours=2))
    assert hitl(live_portal, agent_key, "wait", cp["id"]).returncode == 4


def test_hitl_verify_keeps_a_witness_state_and_catches_a_truncated_log(
    live_portal, agent_key, reviewer, manager, tmp_path
):
    """`hitl verify`, as an auditor runs it from cron: the first run pins the key and keeps
    the head; after someone truncates the log (and its heads) the next run exits 7."""
    from approvals.models import AuditEvent
    from core.models import TreeHead

    cp = json.loads(
        hitl(live_portal, agent_key, "request", "--title", "t", "--tool", "x", check=0).stdout
    )
    checkpoint_decide(cp["id"], reviewer, "approve")
    auditor = user_token_create(manager)
    state = tmp_path / "witness.json"
    event = AuditEvent.objects.get(verb="checkpoint.approved").pk
    first = hitl(
        live_portal, auditor, "verify", "--state", str(state), "--full", "--event", str(event),
        check=0,
    )  # fmt: skip
    report = json.loads(first.stdout)
    assert report["ok"] and report["events"][0]["included"]
    assert report["entries_checked"] == report["head"]["tree_size"]
    assert json.loads(state.read_text())["head"] == report["head"]
    assert "first run" in report["notes"][0]

    size = report["head"]["tree_size"]
    AuditEvent.objects.filter(seq__gt=size - 2).delete()
    TreeHead.objects.filter(tree_size__gt=size - 2).delete()
    second = hitl(live_portal, auditor, "verify", "--state", str(state), check=7)
    problems = json.loads(second.stdout)["problems"]
    assert (
        problems == [f"the log shrank from {size} to {size - 2} events since the head you trust"]
        or "shrank" in problems[0]
    )
    assert json.loads(state.read_text())["head"] == report["head"]  # the good head is kept
