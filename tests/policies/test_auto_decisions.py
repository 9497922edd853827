"""Automatic decisions are Decisions by the policy version, audited with the condition that
matched, and reach the agent exactly like a person's: the create response, GET, long-poll,
webhook, the one-question run, the hosted run's resume. They are counted apart."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.dispatch import receiver as connect
from django.utils.html import escape

from agents.models import Run, RunStep, WebhookDelivery
from approvals.models import Checkpoint, Decision
from approvals.signals import checkpoint_requested
from approvals.transitions import checkpoint_decide
from audit.models import AuditEvent
from hitl_client import verify_webhook
from tests.api.conftest import Api
from tests.hosted.agents import ledger_lines
from tests.policies.conftest import events
from tests.receivers import HttpReceiver

pytestmark = pytest.mark.django_db

JANITOR = (
    'tool == "delete_files" && size(args.paths) <= 20 '
    '&& args.paths.all(p, p.startsWith("/var/log/"))'
)


@pytest.fixture
def allow_logs(publish):
    return publish(
        name="janitor may clean logs",
        condition=JANITOR,
        outcome="auto_approve",
        reason="log clean-up under /var/log",
    )


@pytest.fixture
def deny_drop(publish):
    return publish(
        name="no DROP TABLE",
        match_tool="sql",
        condition='args.sql.lowerAscii().contains("drop table")',
        outcome="auto_reject",
        reason="DROP TABLE only in the migration window",
    )


@pytest.fixture
def hook(agent, private_urls):
    r = HttpReceiver()
    agent.callback_url = r.url
    agent.save()
    yield r
    r.stop()


def test_an_auto_approval_reaches_the_agent_through_every_channel(
    api, run_id, allow_logs, agent, hook, django_capture_on_commit_callbacks
):
    body = {
        "run": run_id,
        "title": "Delete old logs",
        "action": {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}},
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("checkpoints/", body, key="k-1")
    assert response.status_code == 201
    created = response.json()
    decision = created["decision"]
    assert created["status"] == "approved"
    assert decision["automatic"] is True
    assert decision["decided_by"] is None
    assert decision["decided_by_policy"] == {"name": "janitor may clean logs", "version": 1}
    assert decision["comment"] == "log clean-up under /var/log"
    assert decision["action"] == body["action"]
    assert created["routed_to"]["policy_version"] == {
        "name": "janitor may clean logs",
        "version": 1,
    }

    # In sync mode (tests) the request sequences the approval itself, so the 201 already
    # has its place in the ledger and its receipt (as deployed, they may come later: see
    # the next test).
    event = decision["ledger"]["event"]
    assert decision["ledger"]["seq"] == AuditEvent.objects.get(pk=event).seq is not None

    # GET and the long-poll say the same, with the same receipt to redeem.
    got = api.get(f"checkpoints/{created['id']}/").json()["decision"]
    assert got["receipt"] and got["receipt"] == decision["receipt"]
    assert got == decision
    waited = api.get(f"checkpoints/{created['id']}/wait", timeout=30).json()
    assert waited["decision"] == got
    claims = api.post("receipts/verify/", {"receipt": got["receipt"]}).json()["claims"]
    assert claims["policy"]["version"] == 1
    assert claims["deciders"] == ["policy janitor may clean logs v1"]

    # The webhook: signed, delivered to the agent's receiver, with the same decision.
    headers, raw = hook.requests[0].headers, hook.requests[0].body
    verify_webhook(agent.webhook_secret, headers, raw)
    payload = json.loads(raw)
    assert payload["event"] == "checkpoint.decided"
    assert payload["decision"] == got
    assert WebhookDelivery.objects.get().status == "delivered"

    # The row: a Decision by the policy version, not a person.
    vote = Decision.objects.get(checkpoint_id=created["id"])
    assert (vote.reviewer, vote.policy_version, vote.outcome, vote.channel) == (
        None,
        allow_logs.live_version,
        "approve",
        "policy",
    )
    cp = Checkpoint.objects.get(pk=created["id"])
    assert cp.resolved_by is None and cp.final_action == body["action"]


def test_an_auto_approval_answered_before_the_sequencer_logs_it_has_its_receipt_after(
    api, run_id, allow_logs, settings
):
    """As deployed: the sequencer runs elsewhere. The 201 names the approval's audit event,
    with no place in the ledger yet and so no receipt (a receipt carries the approval's
    seq); once the sequencer logged it, GET has both, the receipt binding the policy."""
    from core.ledger import sequencer
    from hitl_client.ledger import action_sha256

    settings.HITL_LEDGER_SYNC = False
    action = {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}}
    created = api.post("checkpoints/", {"run": run_id, "title": "t", "action": action}).json()
    decision = created["decision"]
    assert created["status"] == "approved" and decision["automatic"] is True
    event = AuditEvent.objects.get(pk=decision["ledger"]["event"])
    assert (event.verb, event.seq) == ("checkpoint.approved", None)
    assert (decision["ledger"]["seq"], decision["receipt"]) == (None, None)

    sequencer.sequence_pending()
    event.refresh_from_db()
    got = api.get(f"checkpoints/{created['id']}/").json()["decision"]
    assert got["ledger"]["seq"] == event.seq is not None
    claims = api.post("receipts/verify/", {"receipt": got["receipt"]}).json()["claims"]
    assert claims["checkpoint"] == created["id"] and claims["seq"] == event.seq
    assert claims["deciders"] == ["policy janitor may clean logs v1"]
    assert claims["policy"] == {"id": allow_logs.pk, "name": allow_logs.name, "version": 1}
    assert claims["action_sha256"] == action_sha256(action["tool"], action["args"])


def test_the_audit_names_the_policy_as_actor_and_the_condition_that_matched(request_cp, allow_logs):
    cp = request_cp()
    (auto,) = events("decision.automatic", cp)
    assert (auto.actor_type, auto.actor_label) == ("policy", "policy janitor may clean logs v1")
    assert auto.data["condition"] == JANITOR
    assert auto.data["policy_version"] == 1 and auto.data["outcome"] == "approve"
    (approved,) = events("checkpoint.approved", cp)
    assert approved.actor_type == "policy" and approved.data["decision"] == auto.data["decision"]
    assert events("checkpoint.requested", cp)[0].data["outcome"] == "auto_approve"


def test_an_auto_rejection_gives_the_agent_the_reason(api, run_id, deny_drop):
    response = api.post(
        "checkpoints/",
        {
            "run": run_id,
            "title": "Drop",
            "action": {"tool": "sql", "args": {"sql": "DROP TABLE x"}},
        },
    )
    body = response.json()
    assert body["status"] == "rejected"
    assert body["decision"]["outcome"] == "reject"
    assert body["decision"]["comment"] == "DROP TABLE only in the migration window"
    assert body["decision"]["decided_by_policy"]["name"] == "no DROP TABLE"
    # Something else on the same tool still goes to people.
    other = api.post(
        "checkpoints/",
        {"run": run_id, "title": "Select", "action": {"tool": "sql", "args": {"sql": "SELECT 1"}}},
    ).json()
    assert other["status"] == "pending" and other["decision"] is None


def test_reviewers_are_not_told_of_a_request_a_policy_decided(request_cp, allow_logs):
    told = []

    @connect(checkpoint_requested, dispatch_uid="test-told")
    def listen(sender, checkpoint, **kwargs):
        told.append(checkpoint.pk)

    try:
        decided = request_cp()
        pending = request_cp(action={"tool": "restart", "args": {}})
    finally:
        checkpoint_requested.disconnect(dispatch_uid="test-told")
    assert told == [pending.pk] and decided.status == "approved"


def test_a_one_question_run_completes_with_the_automatic_outcome(api, allow_logs):
    run = api.post("runs/", {"task": "t", "complete_when_resolved": True}).json()
    cp = api.post(
        "checkpoints/",
        {"run": run["id"], "title": "t", "action": {"tool": "delete_files", "args": {"paths": []}}},
    ).json()
    assert cp["status"] == "approved"
    finished = Run.objects.get(pk=run["id"])
    assert finished.status == "completed"
    assert finished.result == {"checkpoint": cp["id"], "status": "approved"}


def test_a_hosted_run_is_resumed_by_an_auto_approval_and_executes(
    ledger_agent, start, sandbox, publish
):
    publish(
        name="small transfers to acme",
        match_tool="transfer",
        condition='args.to == "acme" && args.amount <= 100',
        outcome="auto_approve",
    )
    run = start(ledger_agent([[{"tool": "transfer", "args": {"amount": 100, "to": "acme"}}]]))
    assert run.status == "completed"
    assert [line.split(" ", 1)[1] for line in ledger_lines(sandbox / "ledger.txt")] == [
        "transfer 100 acme"
    ]
    step = RunStep.objects.get(run=run)
    assert step.checkpoint.status == "approved"
    assert step.checkpoint.decisions.get().policy_version.label == "small transfers to acme v1"
    assert run.result["done"][0]["approved_by"] == "policy small transfers to acme v1"


def test_confidence_is_stored_checked_and_usable_in_conditions(api, run_id, publish):
    publish(
        name="confident and low risk",
        condition="confidence != null && confidence >= 0.95 && risk_level == 0",
        outcome="auto_approve",
    )
    base = {"run": run_id, "title": "t", "action": {"tool": "x", "args": {}}, "risk": "low"}
    bad = api.post("checkpoints/", {**base, "confidence": 1.5})
    assert bad.status_code == 400 and "confidence" in bad.json()["errors"]
    unsure = api.post("checkpoints/", {**base, "confidence": 0.5}).json()
    sure = api.post("checkpoints/", {**base, "confidence": 0.97}).json()
    silent = api.post("checkpoints/", base).json()
    assert (unsure["status"], unsure["confidence"]) == ("pending", 0.5)
    assert (sure["status"], sure["confidence"]) == ("approved", 0.97)
    assert (silent["status"], silent["confidence"]) == ("pending", None)
    assert events("checkpoint.requested")[-1].data["confidence"] is None


def test_automatic_decisions_are_counted_apart_from_people(
    request_cp, allow_logs, reviewer, manager, client, admin_client
):
    request_cp(title="clean logs")
    pending = request_cp(title="restart nginx", action={"tool": "restart", "args": {}})
    checkpoint_decide(pending.pk, reviewer, "approve")

    client.force_login(manager)
    home = client.get("/admin/").content.decode()
    assert 'data-stat="by-people">1<' in home and 'data-stat="auto-approved">1<' in home
    rows = list(csv.DictReader(io.StringIO(_export(client))))
    by_policy = {r["title"]: (r["decided_by_policy"], r["resolved_by"]) for r in rows}
    assert by_policy == {
        "clean logs": ("janitor may clean logs v1", ""),
        "restart nginx": ("", "rita"),
    }
    assert Decision.objects.filter(policy_version__isnull=False).count() == 1
    listed = admin_client.get("/admin/approvals/decision/?automatic=1").content.decode()
    assert "policy janitor may clean logs v1" in listed


def _export(client) -> str:
    response = client.get("/admin/approvals/checkpoint/export.csv?status=all")
    return b"".join(response.streaming_content).decode()


def test_the_review_page_shows_the_version_and_the_policy_as_decider(
    request_cp, allow_logs, admin_client
):
    cp = request_cp()
    page = admin_client.get(f"/admin/approvals/checkpoint/{cp.pk}/review/").content.decode()
    assert "janitor may clean logs v1" in page
    assert 'id="automatic-decision"' in page and escape(JANITOR) in page
    assert AuditEvent.objects.filter(verb="decision.automatic").count() == 1


def test_a_halted_agents_person_started_run_is_refused_with_423(reviewer, hosted, manager):
    from agents.transitions import agent_halt

    agent = hosted("janitor2", "tests.hosted.agents.LedgerAgent", turns=[])
    agent_halt(agent.pk, manager, reason="incident 42")
    from approvals.services import user_token_create

    token = user_token_create(manager, name="t", scope="read")
    manager.user_permissions.add(*_perm("add_run"))
    response = Api(token).post("runs/", {"agent": "janitor2", "task": "go"})
    assert response.status_code == 423
    assert response.json()["halted_by"] == "max" and response.json()["reason"] == "incident 42"
    assert not Run.objects.filter(agent=agent).exists()


def _perm(codename):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename=codename)


def test_an_auto_rejection_reaches_the_agent_by_webhook_and_long_poll(
    api, run_id, deny_drop, agent, hook, django_capture_on_commit_callbacks
):
    body = {
        "run": run_id,
        "title": "Drop",
        "action": {"tool": "sql", "args": {"sql": "DROP TABLE x"}},
    }
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("checkpoints/", body, key="k-drop").json()
    assert created["status"] == "rejected"

    # The webhook: signed, the rejection and the reason the agent can act on.
    [request] = hook.requests
    verify_webhook(agent.webhook_secret, request.headers, request.body)
    payload = json.loads(request.body)
    assert payload["event"] == "checkpoint.decided"
    assert payload["checkpoint"]["id"] == created["id"]
    assert payload["checkpoint"]["status"] == "rejected"
    decision = payload["decision"]
    assert (decision["outcome"], decision["automatic"], decision["decided_by"]) == (
        "reject",
        True,
        None,
    )
    assert decision["comment"] == "DROP TABLE only in the migration window"
    assert decision["decided_by_policy"] == {"name": "no DROP TABLE", "version": 1}
    assert WebhookDelivery.objects.get().status == "delivered"

    # The long-poll answers at once with the same decision.
    waited = api.get(f"checkpoints/{created['id']}/wait", timeout=30).json()
    assert waited["status"] == "rejected"
    assert waited["decision"]["comment"] == "DROP TABLE only in the migration window"
    assert waited["decision"]["outcome"] == "reject" and waited["decision"]["automatic"] is True
