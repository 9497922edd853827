"""`hitl review` in a terminal: the reviewer's queue, one request at a time, through the same
decision endpoint and rules as the review page (a subprocess against a live portal, its
keyboard fed through stdin, $EDITOR a script)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from approvals.artifacts import ArtifactInput
from approvals.models import Decision
from approvals.services import user_token_create
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EDITOR = textwrap.dedent(
    """
    import json, sys
    path = sys.argv[1]
    args = json.load(open(path))
    args["paths"] = ["/var/log/only-this.log"]
    open(path, "w").write(json.dumps(args))
    """
)


def review(portal, token, keys: str, tmp_path, *extra, editor=EDITOR):
    script = tmp_path / "editor.py"
    script.write_text(editor)
    env = {
        **os.environ,
        "HITL_URL": portal.url,
        "HITL_API_KEY": token,
        "EDITOR": f"{sys.executable} {script}",
        "NO_COLOR": "",
    }
    return subprocess.run(
        [sys.executable, "-m", "hitl_client.cli", "review", *extra],
        input=keys,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_it_walks_the_queue_approve_reject_edit_skip(live_portal, make_checkpoint, tmp_path):
    rita = UserFactory(username="rita", roles=["ops"])
    token = user_token_create(rita, scope="decide")
    first = make_checkpoint(title="Rotate nginx logs", expires_in=600, summary="weekly")
    second = make_checkpoint(title="Delete the tmp cache", expires_in=700)
    third = make_checkpoint(
        title="Delete old logs",
        expires_in=800,
        artifacts=[ArtifactInput(name="plan.diff", kind="diff", content="-a.log\n-b.log\n")],
        context={"request": "free some disk", "reasoning": ["disk is 95% full"]},
    )
    fourth = make_checkpoint(title="Truncate the audit cache", expires_in=900)

    keys = "y\nn\n\nstill used by the backup job\ne\ny\nonly the oldest\ns\n"
    proc = review(live_portal, token, keys, tmp_path, "--color", "always")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout

    # the summary, the action and the diff, coloured
    assert "1/4 · Approval · MEDIUM risk · ops" in out
    assert "Rotate nginx logs" in out and "weekly" in out
    assert "Proposed action: \033[1mdelete_files\033[0m" in out
    assert "\033[31m-a.log\033[0m" in out  # the artifact's diff, in red
    assert "Request: free some disk" in out and "1. disk is 95% full" in out
    assert "A rejection needs a reason." in out
    assert '+    "/var/log/only-this.log"' in out.replace("\033[32m", "").replace("\033[0m", "")
    assert "Done: 1 approved, 1 rejected, 1 edited, 1 skipped" in out

    for cp in (first, second, third, fourth):
        cp.refresh_from_db()
    assert first.status == "approved" and first.resolved_by == rita
    assert second.status == "rejected"
    assert second.resolution_reason == "still used by the backup job"
    assert third.status == "approved"
    assert third.final_action["args"] == {"paths": ["/var/log/only-this.log"]}
    assert fourth.status == "pending"
    votes = Decision.objects.filter(reviewer=rita).order_by("created_at")
    assert [(v.outcome, v.channel) for v in votes] == [
        ("approve", "cli"),
        ("reject", "cli"),
        ("modify", "cli"),
    ]
    assert votes[2].comment == "only the oldest"


def test_an_invalid_edit_is_caught_before_anything_is_sent(live_portal, make_checkpoint, tmp_path):
    rita = UserFactory(username="rita", roles=["ops"])
    cp = make_checkpoint(expires_in=600)
    broken = 'import sys\nopen(sys.argv[1], "w").write("[1, 2")\n'
    proc = review(
        live_portal, user_token_create(rita, scope="decide"), "e\nc\nq\n", tmp_path, editor=broken
    )
    assert proc.returncode == 0, proc.stderr
    assert "Not valid:" in proc.stdout and "\033[" not in proc.stdout  # no colour in a pipe
    cp.refresh_from_db()
    assert cp.status == "pending" and not Decision.objects.exists()


def test_it_shows_the_portal_refusal_and_goes_on(live_portal, make_checkpoint, tmp_path):
    rita = UserFactory(username="rita", roles=["ops"])
    cp = make_checkpoint(expires_in=600)
    read_only = user_token_create(rita, scope="read")
    proc = review(live_portal, read_only, "y\n", tmp_path)
    assert "Not recorded (403)" in proc.stdout and "decide scope" in proc.stdout
    assert "Done: nothing decided." in proc.stdout
    cp.refresh_from_db()
    assert cp.status == "pending"


def test_the_end_of_input_mid_rejection_sends_nothing_and_an_answer_is_needed(
    live_portal, make_checkpoint, tmp_path
):
    rita = UserFactory(username="rita", roles=["ops"])
    token = user_token_create(rita, scope="decide")
    question = make_checkpoint(
        kind="question", title="Which region?", expires_in=600, options=["eu", "us"]
    )
    approval = make_checkpoint(title="Delete the tmp cache", expires_in=700)
    # an empty answer is asked again; then the input ends while a reason is asked for
    proc = review(live_portal, token, "a\n\neu\nn\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "An answer cannot be empty." in proc.stdout
    assert "Done: 1 answered" in proc.stdout and "Traceback" not in proc.stderr
    question.refresh_from_db()
    approval.refresh_from_db()
    assert question.status == "answered" and question.answer == "eu"
    assert approval.status == "pending"
    assert list(Decision.objects.values_list("outcome", flat=True)) == ["answer"]
