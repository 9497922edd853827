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
from approvals.models import Checkpoint
from approvals.services import user_token_create
from approvals.transitions import checkpoint_decide
from audit.models import AuditEvent
from tests.code import pythonpath

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# The console script pip installed (its entry point, hitl_client.cli:main), importing this
# checkout's code through PYTHONPATH.
HITL = [str(Path(sys.executable).with_name("hitl"))]


def hitl_env(portal, key) -> dict[str, str]:
    """`key` None: an outsider, with no HITL_API_KEY (nor HITL_TOKEN) in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_API_KEY", "HITL_TOKEN")}
    env["HITL_URL"] = portal.url
    env["PYTHONPATH"] = pythonpath()
    if key is not None:
        env["HITL_API_KEY"] = key
    return env


def hitl(portal, key, *args, check=None, cwd=ROOT):
    proc = subprocess.run(
        [*HITL, *args], capture_output=True, text=True, env=hitl_env(portal, key), timeout=60,
        cwd=cwd, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check is not None:
        assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def start_hitl(portal, key, *args, cwd=ROOT) -> subprocess.Popen:
    """`hitl` running in the background (it waits for a reviewer)."""
    return subprocess.Popen(
        [*HITL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=hitl_env(portal, key), cwd=cwd,
    )  # fmt: skip


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
    approved = hitl(live_portal, agent_key, "wait", cp["id"], check=8)  # approved with edits
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
    from audit.models import AuditEvent
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


def _approve_one(portal, agent_key, reviewer) -> None:
    from core.ledger import sequencer

    cp = json.loads(
        hitl(portal, agent_key, "request", "--title", "t", "--tool", "x", check=0).stdout
    )
    checkpoint_decide(cp["id"], reviewer, "approve")
    sequencer.sequence_pending()


def test_hitl_verify_needs_no_credentials_for_the_public_checks(
    live_portal, agent_key, reviewer, tmp_path
):
    """An outsider acting as a witness: no key at all. The head, the keys and the
    consistency proofs are public, so both the first run and the next (which proves the new
    head extends the one kept) pass; what needs an account says so."""
    _approve_one(live_portal, agent_key, reviewer)
    state = tmp_path / "witness.json"
    first = json.loads(hitl(live_portal, None, "verify", "--state", str(state), check=0).stdout)
    assert first["ok"] and "first run" in first["notes"][0]
    assert json.loads(state.read_text())["head"] == first["head"]

    _approve_one(live_portal, agent_key, reviewer)
    second = json.loads(hitl(live_portal, None, "verify", "--state", str(state), check=0).stdout)
    assert second["ok"] and second["previous"] == first["head"]
    assert second["head"]["tree_size"] > first["head"]["tree_size"]  # a consistency proof
    assert json.loads(state.read_text())["head"] == second["head"]

    event = AuditEvent.objects.filter(verb="checkpoint.approved").first().pk
    refused = hitl(live_portal, None, "verify", "--state", str(state), "--event", str(event))
    assert refused.returncode == 1 and "no API key" in json.loads(refused.stderr)["error"]


def test_hitl_verify_starts_from_the_last_head_of_a_witness_file(
    live_portal, agent_key, reviewer, tmp_path
):
    """A file witness appends one head per line: --trusted-head takes the last one; a file
    that holds no head is an error (exit 1, said on stderr), not a traceback."""
    from core.ledger import heads
    from core.models import TreeHead

    _approve_one(live_portal, agent_key, reviewer)
    older = heads.as_json(TreeHead.objects.order_by("tree_size").first())
    _approve_one(live_portal, agent_key, reviewer)
    newer = heads.as_json(TreeHead.objects.order_by("-tree_size").first())
    assert older["tree_size"] < newer["tree_size"]
    witness = tmp_path / "heads.jsonl"
    witness.write_text(
        "".join(json.dumps(head, separators=(",", ":")) + "\n" for head in (older, newer)) + "\n"
    )
    out = hitl(
        live_portal, None, "verify", "--state", str(tmp_path / "s.json"),
        "--trusted-head", str(witness), check=0,
    )  # fmt: skip
    assert json.loads(out.stdout)["previous"] == newer

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"tree_size": 3, "root\nnot json at all\n')
    for path in (garbage, tmp_path / "missing.jsonl"):
        bad = hitl(
            live_portal, None, "verify", "--state", str(tmp_path / "s2.json"),
            "--trusted-head", str(path), check=1,
        )  # fmt: skip
        error = json.loads(bad.stderr)["error"]
        assert error.startswith(f"--trusted-head {path}: "), error
        assert "Traceback" not in bad.stderr
    assert not (tmp_path / "s2.json").exists()
