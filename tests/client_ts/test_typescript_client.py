"""@hitl-portal/client, packed and installed, against a live `manage.py runportal`: an agent
asks, a reviewer edits and approves through the API, the agent checks the receipt offline,
redeems it and runs exactly the approved arguments; the portal's own webhook verifies with
the package; and both adapters drive the real SDKs (`ai`, `@openai/agents`) with scripted
models (no network)."""

from __future__ import annotations

import base64
import json
import subprocess
import tarfile
import time

import httpx
import pytest

from approvals.models import Checkpoint
from approvals.services import user_token_create
from audit.models import AuditEvent
from core.models import Receipt
from tests.client_ts.conftest import PACKAGE
from tests.integrations.helpers import wait_for_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def decide(portal: str, user, checkpoint_id, outcome: str, **body) -> dict:
    """A reviewer decides through the portal's REST API."""
    response = httpx.post(
        f"{portal}/api/v1/checkpoints/{checkpoint_id}/decision/",
        json={"outcome": outcome, **body},
        headers={"Authorization": f"Bearer {user_token_create(user, scope='decide')}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def verbs(checkpoint: Checkpoint) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(checkpoint.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )


def test_its_unit_tests_pass(installed):
    # node's own test runner, on the build the other tests installed
    proc = subprocess.run(
        ["node", "--test", "test/"], cwd=PACKAGE, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout


def test_it_is_packed_as_esm_cjs_and_types_without_runtime_dependencies(installed):
    with tarfile.open(installed.tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("package/package.json"))
    for entry in ("index", "ai-sdk", "openai-agents"):
        for ext in ("js", "cjs", "d.ts", "d.cts"):
            assert f"package/dist/{entry}.{ext}" in names
    assert not any(name.startswith("package/src/") for name in names)
    assert "dependencies" not in manifest  # fetch and Web Crypto only
    assert manifest["peerDependenciesMeta"] == {
        "@openai/agents": {"optional": True},
        "ai": {"optional": True},
    }
    loaded = installed.node("entry_points.cjs", env={})
    assert loaded["cjs"] == ["function"] * 4 and loaded["esm"] == ["function"] * 2
    assert loaded["version"] == manifest["version"]


def test_it_asks_waits_checks_the_receipt_offline_redeems_and_runs_the_edited_args(
    installed, agent_env, agent, rita, receiver, portal
):
    proc = installed.popen("flow.mjs", env=agent_env)
    try:
        asked = json.loads(proc.stdout.readline())
        assert asked["again"] == asked["checkpoint"], "the same Idempotency-Key asks once"
        cp = Checkpoint.objects.get(pk=asked["checkpoint"])
        assert cp.status == "pending" and cp.run.external_id == "ts-flow"
        assert cp.action == {
            "tool": "delete_files",
            "args": {"paths": ["/var/log/a.log", "/var/log/b.log"], "force": False},
        }
        assert cp.context["reasoning"] == ["disk 95%"]
        edited = {"paths": ["/var/log/a.log"], "force": False}
        decide(portal, rita, cp.pk, "modify", action={"args": edited}, comment="only a.log")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    done = json.loads(stdout.strip().splitlines()[-1])

    assert done["executed"] == {"tool": "delete_files", "args": edited}
    assert done["edited"] is True and done["decidedBy"] == "rita"
    assert done["originalArgsRefused"] == "InvalidReceipt"  # bound to the edited action
    assert done["secondRedeem"] == {"status": 409, "code": "receipt_redeemed"}
    claims = done["claims"]
    assert claims["checkpoint"] == str(cp.pk) and claims["deciders"] == ["rita"]
    assert claims["seq"] == done["ledgerSeq"] and claims["agent"] == "ts-bot"

    cp.refresh_from_db()
    assert cp.status == "approved" and cp.final_action["args"] == edited
    assert Checkpoint.objects.filter(run=cp.run).count() == 1
    receipt = Receipt.objects.get(pk=claims["rid"])
    assert receipt.redeemed_at is not None and receipt.redeemed_by == "agent:ts-bot"
    assert done["redemption"]["action_sha256"] == claims["action_sha256"]
    assert verbs(cp)[:1] == ["checkpoint.requested"]
    assert "checkpoint.approved" in verbs(cp)
    assert AuditEvent.objects.filter(verb="receipt.redeemed", target_id=str(cp.pk)).count() == 1
    cp.run.refresh_from_db()
    assert cp.run.status == "completed" and cp.run.result == {"deleted": 1}

    # The portal's webhook for that decision, as the receiver got it, verifies with the package.
    sent = [r for r in receiver.wait_for(1, timeout=60) if str(cp.pk) in r.body.decode()]
    assert sent, "the portal sent no webhook for the decision"
    header = {k.lower(): v for k, v in sent[0].headers.items()}["x-hitl-signature"]
    checked = installed.node(
        "verify_webhook.mjs",
        agent.webhook_secret,
        header,
        base64.b64encode(sent[0].body).decode(),
        env={},
    )
    assert checked["genuine"] is True
    assert checked["tampered"] == "WebhookVerificationError: signature does not match"
    assert checked["wrong_secret"] == "WebhookVerificationError: signature does not match"


def test_the_ai_sdk_adapter_runs_approved_edits_and_tells_the_model_why_not(
    installed, agent_env, rita, portal
):
    proc = installed.popen("ai_sdk.mjs", env=agent_env)
    try:
        delete = wait_for_checkpoint(action__tool="deleteFiles")
        restart = wait_for_checkpoint(action__tool="restartService")
        assert delete.action["args"] == {"paths": ["/var/log/a.log", "/etc/passwd"]}
        assert delete.action["args_schema"]["required"] == ["paths"]  # the tool's inputSchema
        assert delete.title == "AI SDK: /var/log/a.log, /etc/passwd"
        assert delete.context["tool_call_id"] == "call-del"
        decide(portal, rita, delete.pk, "modify", action={"args": {"paths": ["/var/log/a.log"]}})
        decide(portal, rita, restart.pk, "reject", comment="not during business hours")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    done = json.loads(stdout.strip().splitlines()[-1])
    assert done["executed"] == [{"tool": "deleteFiles", "paths": ["/var/log/a.log"]}]
    assert done["text"] == "done"
    outputs = {r["toolName"]: r["output"] for r in done["toolResults"]}
    assert outputs["deleteFiles"] == {"type": "json", "value": {"deleted": 1}}
    assert outputs["restartService"]["value"] == (
        "Not done: a human reviewer rejected it. Reason: not during business hours"
    )
    assert Receipt.objects.get(subject__contains=str(delete.pk)).redeemed_at is not None
    assert not Receipt.objects.filter(subject__contains=str(restart.pk)).exists()


def test_the_openai_agents_adapter_resumes_in_another_process_with_the_decisions(
    installed, agent_env, rita, portal
):
    paused = installed.node("openai_agents.mjs", "submit", env=agent_env)
    assert paused["interruptions"] == 2 and paused["executed"] == []
    assert paused["again"] == paused["checkpoints"]  # submitting again: the same checkpoints
    delete, restart = (Checkpoint.objects.get(pk=pk) for pk in paused["checkpoints"])
    assert (
        delete.external_id == "openai-agents:call_del" and delete.run.external_id == "ts-agents-42"
    )
    assert delete.context["source"] == "openai-agents"
    assert delete.action["args"] == {"paths": ["/var/log/a.log", "/etc/passwd"]}
    assert delete.action["args_schema"]["required"] == ["paths"]
    assert [a.name for a in delete.artifacts.all()] == ["run_state.json"]
    assert restart.context["openai-agents"]["snapshot_checkpoint"] == str(delete.pk)

    decide(portal, rita, delete.pk, "modify", action={"args": {"paths": ["/var/log/a.log"]}})
    decide(portal, rita, restart.pk, "reject", comment="not during business hours")
    time.sleep(0.2)
    done = installed.node("openai_agents.mjs", "resume", *paused["checkpoints"], env=agent_env)
    assert done["executed"] == [{"tool": "delete_files", "paths": ["/var/log/a.log"]}]
    assert done["finalOutput"] == "All done."
    outputs = {o["callId"]: o["output"] for o in done["outputs"]}
    assert "edited this call" in json.dumps(outputs["call_del"]) and "deleted 1" in json.dumps(
        outputs["call_del"]
    )
    assert "not during business hours" in json.dumps(outputs["call_rst"])
