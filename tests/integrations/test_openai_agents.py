"""`hitl_client.openai_agents` with the real OpenAI Agents SDK (its own `ScriptedModel` stands
in for the LLM: no network) against a live portal. The agent application
(`openai_agents_app.py`) runs as its own processes — one pauses and submits, a later one
resumes — and the assertions are on what its tools executed and what its model was sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from approvals.models import Artifact, Checkpoint
from approvals.transitions import checkpoint_expire
from tests.code import CLIENT
from tests.integrations.helpers import decide

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

APP = Path(__file__).with_name("openai_agents_app.py")


def app_runner(python: str, pythonpath: str, live_portal, agent_key, cwd: Path):
    """Runs the agent application with `python` (this venv's, or a venv with the installed
    wheel: tests/integrations/test_installed.py) and only `pythonpath` importable besides."""

    def run(*args: str) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(HITL_URL=live_portal.url, HITL_API_KEY=agent_key)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        proc = subprocess.run(
            [python, str(APP), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture
def app(live_portal, agent_key, tmp_path):
    # Only hitl_client beside the SDK: the SDK's `agents` package must not meet the portal's.
    (tmp_path / "hitl_client").symlink_to(CLIENT / "hitl_client")
    return app_runner(sys.executable, str(tmp_path), live_portal, agent_key, tmp_path)


def test_edits_run_with_typed_arguments_and_rejections_reach_the_model(app, live_portal, reviewer):
    edits_and_rejections(app, live_portal, reviewer)


def edits_and_rejections(app, live_portal, reviewer) -> None:
    """The scenario, also run from an installed wheel (test_installed.py)."""
    paused = app("submit", "ticket-42")
    assert paused["interruptions"] == 2 and paused["executed"] == []
    assert paused["again"] == paused["checkpoints"]  # submitting again: the same checkpoints
    delete, rst = (Checkpoint.objects.get(pk=pk) for pk in paused["checkpoints"])
    assert Checkpoint.objects.count() == 2 and delete.run.external_id == "ticket-42"
    assert delete.external_id == "openai-agents:call_del"
    assert delete.action["args"] == {
        "paths": ["/var/log/a.log"],
        "older_than_days": 30,
        "dry_run": True,
    }
    assert delete.action["args_schema"]["properties"]["older_than_days"]["type"] == "integer"
    assert delete.context["source"] == "openai-agents"
    assert Artifact.objects.get(checkpoint=delete).kind == "json"  # the state, stored once
    assert rst.context["openai-agents"]["snapshot_checkpoint"] == str(delete.pk)

    edited = {"paths": ["/var/log/a.log"], "older_than_days": 90, "dry_run": False}
    bad = decide(live_portal, reviewer, delete, "modify", expect=400,
                 args={**edited, "older_than_days": "90"})  # fmt: skip
    assert "older_than_days" in bad["errors"]["action"]["args"]
    decide(live_portal, reviewer, delete, "modify", args=edited)
    decide(live_portal, reviewer, rst, "reject", comment="not during business hours")

    resumed = app("resume", *paused["checkpoints"])
    assert resumed["executed"] == [["delete_files", ["/var/log/a.log"], 90, False]]
    assert resumed["outputs"]["call_rst"] == "not during business hours"
    assert resumed["outputs"]["call_del"].endswith("deleted 1 files")
    assert "human reviewer edited this call" in resumed["outputs"]["call_del"]
    assert resumed["final"] == "done"


def test_approve_expiry_and_a_tampered_state(app, live_portal, reviewer):
    paused = app("submit", "-")
    delete, rst = (Checkpoint.objects.get(pk=pk) for pk in paused["checkpoints"])
    decide(live_portal, reviewer, delete, "approve")
    Checkpoint.objects.filter(pk=rst.pk).update(deadline=rst.created_at)
    checkpoint_expire(rst.pk)
    resumed = app("resume", *paused["checkpoints"])
    assert resumed["executed"] == [["delete_files", ["/var/log/a.log"], 30, True]]
    assert resumed["outputs"]["call_rst"].startswith("not approved (expired): No decision")

    artifact = Artifact.objects.get(checkpoint=delete)
    Artifact.objects.filter(pk=artifact.pk).update(
        inline=artifact.inline.replace("janitor", "janit0r")
    )
    refused = app("tamper-check", *paused["checkpoints"])
    assert "does not match its sha256" in refused["error"]


def test_an_edit_never_runs_the_models_arguments_on_a_tool_that_cannot_take_it(
    app, live_portal, reviewer
):
    """Only a FunctionTool wrapped by `wrap_tools` can run an edit: other tools' checkpoints
    offer approve and reject only, and an edit that reaches one anyway (a checkpoint from an
    older helper; an app that resumes without `wrap_tools`) rejects the call, saying why."""
    paused = app("submit-mixed")
    assert paused["executed"] == []
    delete, reboot, patch = (Checkpoint.objects.get(pk=pk) for pk in paused["checkpoints"])
    assert patch.external_id == "openai-agents:call_patch"
    assert patch.action["args"] == {"operation": {"type": "delete_file", "path": "settings.py"}}
    assert delete.allowed_outcomes == []  # the default: approve, modify, reject
    assert set(reboot.allowed_outcomes) == set(patch.allowed_outcomes) == {"approve", "reject"}
    refused = decide(live_portal, reviewer, reboot, "modify", expect=400, args={"host": "db2"})
    assert refused["code"] == "outcome_not_allowed"

    Checkpoint.objects.filter(pk=patch.pk).update(allowed_outcomes=[])  # as an older helper
    other_file = {"operation": {"type": "delete_file", "path": "tmp.txt"}}
    decide(live_portal, reviewer, patch, "modify", args=other_file)
    decide(live_portal, reviewer, delete, "modify",
           args={"paths": ["/tmp/b"], "older_than_days": 90, "dry_run": False})  # fmt: skip
    decide(live_portal, reviewer, reboot, "approve")

    resumed = app("resume-mixed", *paused["checkpoints"])  # delete_files is not wrapped now
    assert resumed["executed"] == [["reboot", "db1"]]  # neither the edit nor the original ran
    assert resumed["outputs"]["call_del"].startswith("Not run: a human reviewer approved")
    assert (
        "not wrapped with hitl_client.openai_agents.wrap_tools" in (resumed["outputs"]["call_del"])
    )
    assert "ApplyPatchTool takes no edited arguments" in resumed["outputs"]["call_patch"]
    assert resumed["final"] == "done"
