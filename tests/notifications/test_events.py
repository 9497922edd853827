"""What is announced, to whom: the next stage's role, each escalation step's role, reminders
before the deadline and the SLA target, SLA breaches and drill results to managers, the
outcome to the requester and the agent's owner, a halt and a resume to the agent's owner;
people out of office and four-eyes exclusions are left out; digests."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.transitions import run_start
from approvals.models import Checkpoint
from approvals.signals import checkpoint_sla_breached
from approvals.transitions import checkpoint_decide, checkpoint_expire_batch
from audit.events import Actor
from notifications import services, sweeps
from notifications.models import Delivery, DigestEntry, Notice, Preference
from tests.factories import PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db


def recipients(smtp, subject_part: str) -> list[str]:
    return sorted(a for m in smtp.mails if subject_part in m.subject for a in m.recipients)


def test_it_tells_the_next_stage_and_each_escalation_step(
    inline, make_checkpoint, ops_team, smtp, django_capture_on_commit_callbacks
):
    UserFactory(username="dora", roles=["dba"])
    UserFactory(username="lead", roles=["ops-leads"])
    PolicyFactory(
        stages=[{"role": "ops", "approvals": 1}, {"role": "dba", "approvals": 1}],
        timeout_seconds=60,
        expiry_action="escalate",
        escalation_ladder=[{"role": "ops-leads", "timeout_seconds": 600}],
    )
    cp = inline(make_checkpoint)
    assert recipients(smtp, "Approval needed") == ["raj@example.com", "rita@example.com"]
    inline(checkpoint_decide, cp.pk, ops_team["rita"], "approve")
    assert recipients(smtp, "(stage 2)") == ["dora@example.com"]
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint_expire_batch(now=timezone.now() + dt.timedelta(seconds=61))
    assert recipients(smtp, "Escalated to ops-leads") == ["lead@example.com"]
    assert [n.event for n in Notice.objects.order_by("created_at")] == [
        "checkpoint.requested",
        "checkpoint.stage",
        "checkpoint.escalated",
    ]


def test_it_reminds_the_role_before_the_deadline_and_the_sla_once_each(
    inline, make_checkpoint, ops_team, smtp, settings, django_capture_on_commit_callbacks
):
    settings.HITL_REMIND_BEFORE_DEADLINE = 300
    settings.HITL_REMIND_BEFORE_SLA = 300
    PolicyFactory(timeout_seconds=3600, sla_seconds=1200)
    cp = inline(make_checkpoint)
    smtp.mails.clear()
    now = timezone.now()
    # nothing is due yet
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run(now)["reminders"] == 0
    # 17 min in: the SLA (20 min) is 3 min away; twice, on two clusters: one reminder
    later = now + dt.timedelta(minutes=17)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run(later)["sla_reminders"] == 1
        assert sweeps.run(later)["sla_reminders"] == 0
    assert recipients(smtp, "SLA due in") == ["raj@example.com", "rita@example.com"]
    # 56 min in: the deadline is 4 min away
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run(now + dt.timedelta(minutes=56))["reminders"] == 1
        assert sweeps.run(now + dt.timedelta(minutes=57))["reminders"] == 0
    mail = [m for m in smtp.mails if m.subject.startswith("[HITL] Reminder")]
    assert len(mail) == 2 and "deadline in" in mail[0].body()
    assert Notice.objects.filter(checkpoint=cp, event="checkpoint.reminder").count() == 1


def test_it_tells_managers_of_an_sla_breach(inline, make_checkpoint, ops_team, smtp):
    UserFactory(username="max", roles=[settings.HITL_MANAGERS_GROUP])
    UserFactory(username="mia", roles=[settings.HITL_MANAGERS_GROUP], is_active=False)
    cp = inline(make_checkpoint)

    def breach():
        with transaction.atomic():
            checkpoint_sla_breached.send(sender=Checkpoint, checkpoint=cp)

    inline(breach)
    inline(breach)  # the oversight sweep on two clusters
    assert recipients(smtp, "SLA breached") == ["max@example.com"]


def test_it_tells_the_requester_and_the_agent_owner_the_outcome(
    inline, make_checkpoint, ops_team, smtp, agent
):
    stan = UserFactory(username="stan")
    agent.owner = UserFactory(username="olga")
    agent.save()
    run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent), created_by=stan)
    cp = inline(make_checkpoint, run=run)
    inline(checkpoint_decide, cp.pk, ops_team["raj"], "reject", comment="b.log is in use")
    assert recipients(smtp, "Rejected by raj") == ["olga@example.com", "stan@example.com"]
    mail = smtp.to("stan@example.com")[-1]
    assert "b.log is in use" in mail.body()


def test_expired_batches_tell_each_requester_in_a_constant_number_of_queries(
    inline, make_checkpoint, smtp, agent, django_capture_on_commit_callbacks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def share(queries) -> int:
        # notifications' own share (the agent side's webhook outbox is per checkpoint)
        return sum("notifications_" in q["sql"] for q in queries.captured_queries)

    def batch(n: int, offset: int) -> tuple[int, int]:
        for i in range(offset, offset + n):
            person = UserFactory(username=f"req{i}")
            run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent), created_by=person)
            inline(make_checkpoint, run=run, expires_in=1)
        later = timezone.now() + dt.timedelta(seconds=5)
        with (
            django_capture_on_commit_callbacks() as committed,
            CaptureQueriesContext(connection) as expiring,
        ):
            assert checkpoint_expire_batch(now=later)["expired"] == n
        # After the commit: the fan-out task (the sends it owes run as the block ends, after
        # the count).
        with (
            django_capture_on_commit_callbacks(execute=True),
            CaptureQueriesContext(connection) as fanning,
        ):
            for callback in committed:
                callback()
        return share(expiring), share(fanning)

    two, five = batch(2, 0), batch(5, 2)
    # the notices of a batch are one INSERT; their recipients and deliveries, bulk writes
    assert two == five and two[0] == 1, (two, five)
    assert recipients(smtp, "Expired") == sorted(f"req{i}@example.com" for i in range(7))


def test_people_out_of_office_are_not_told_and_their_claims_are_released(
    inline, make_checkpoint, ops_team, smtp, client
):
    from approvals.transitions import checkpoint_claim

    rita = ops_team["rita"]
    held = inline(make_checkpoint)
    checkpoint_claim(held.pk, rita)
    client.force_login(rita)
    until = (timezone.now() + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        "/admin/notifications/",
        {"email": "on", "email_mode": "immediate", "away_until": until, "away_note": "raj covers"},
    )
    assert response.status_code == 302
    held.refresh_from_db()
    assert held.claimed_by is None
    from audit.models import AuditEvent

    assert AuditEvent.objects.filter(verb="checkpoint.released", target_id=str(held.pk)).exists()
    assert AuditEvent.objects.get(verb="user.away").data["note"] == "raj covers"

    smtp.mails.clear()
    inline(make_checkpoint)
    assert recipients(smtp, "Approval needed") == ["raj@example.com"]

    # the queue shows who is away, and until when
    client.force_login(ops_team["raj"])
    page = client.get("/admin/approvals/checkpoint/").content.decode()
    assert "rita" in page and "away until" in page

    # back early
    client.force_login(rita)
    client.post("/admin/notifications/", {"email": "on", "email_mode": "immediate"})
    assert not Preference.objects.get(user=rita).is_away()
    assert AuditEvent.objects.filter(verb="user.back").exists()


def test_email_off_and_the_hourly_digest(
    inline, make_checkpoint, ops_team, smtp, django_capture_on_commit_callbacks
):
    services.preferences_save(
        ops_team["rita"], email=False, email_mode="immediate", away_until=None
    )
    services.preferences_save(ops_team["raj"], email=True, email_mode="digest", away_until=None)
    inline(make_checkpoint, title="First")
    inline(make_checkpoint, title="Second")
    assert smtp.mails == []
    assert DigestEntry.objects.filter(recipient=ops_team["raj"]).count() == 2

    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeps.run(now)["digests"] == 0  # the oldest has not waited an hour
        assert sweeps.run(now + dt.timedelta(minutes=61))["digests"] == 1
        assert sweeps.run(now + dt.timedelta(minutes=62))["digests"] == 0
    [mail] = smtp.wait_for(1)
    assert mail.recipients == ["raj@example.com"]
    assert mail.subject == "[HITL] 2 notifications from the last hour"
    body = mail.body()
    assert body.index("First") < body.index("Second")
    digest = Delivery.objects.get(event="digest")
    assert digest.status == "delivered" and digest.entries.count() == 2


def test_it_tells_the_owner_when_their_agent_is_halted_and_resumed(
    inline, make_checkpoint, ops_team, smtp, agent, manager
):
    from agents.transitions import agent_halt, agent_resume

    olga = UserFactory(username="olga")
    agent.owner = olga
    agent.save()
    make_checkpoint()
    inline(agent_halt, agent.pk, manager, reason="leaking secrets in logs")

    [halted] = [m for m in smtp.to("olga@example.com") if "Agent halted" in m.subject]
    assert halted.subject == "[HITL] Agent halted: Bot (bot)"
    assert halted.message["X-HITL-Event"] == "agent.halted"
    body = halted.body()
    assert "max halted your agent: leaking secrets in logs." in body
    assert "1 unfinished run(s) and 1 pending request(s) were cancelled" in body
    assert f"/admin/agents/agent/{agent.pk}/change/" in body
    assert "leaking secrets in logs" in halted.body("html")
    # Only the owner hears of it: not the reviewers, not the managers.
    assert recipients(smtp, "Agent halted") == ["olga@example.com"]
    delivery = Delivery.objects.get(event="agent.halted")
    assert (delivery.status, delivery.recipient, delivery.notice) == ("delivered", olga, None)

    inline(agent_resume, agent.pk, manager, note="keys rotated")
    [resumed] = [m for m in smtp.to("olga@example.com") if "Agent resumed" in m.subject]
    assert "max resumed your agent — keys rotated." in resumed.body()
    assert "leaking secrets in logs" in resumed.body()  # the halt it lifts

    # Each halt is its own occurrence; an owner who turned email off is not written to.
    inline(agent_halt, agent.pk, manager, reason="again")
    assert len(recipients(smtp, "Agent halted")) == 2
    inline(agent_resume, agent.pk, manager)
    services.preferences_save(olga, email=False, email_mode="immediate", away_until=None)
    inline(agent_halt, agent.pk, manager, reason="third time")
    assert len(recipients(smtp, "Agent halted")) == 2
    assert Delivery.objects.filter(event="agent.halted").count() == 2


def test_it_tells_managers_the_result_of_a_drill_and_nobody_else(
    inline, ops_team, smtp, agent, manager
):
    from oversight import drills
    from oversight.models import Drill

    agent.owner = UserFactory(username="olga")
    agent.save()
    request = {
        "agent": "bot",
        "kind": "approval",
        "title": "Delete old logs",
        "action": {"tool": "delete_files", "args": {"paths": ["/etc/passwd"]}},
        "risk": "medium",
    }
    drill = inline(
        drills.drill_schedule,
        user=manager,
        name="passwd",
        defect="deletes /etc/passwd",
        request=request,
    )
    cp = drill.checkpoints.get()
    # Reviewers are asked as for any request: nothing tells them it is a drill.
    assert recipients(smtp, "Approval needed") == ["raj@example.com", "rita@example.com"]
    assert not [m for m in smtp.mails if "rill" in m.subject + m.body()]

    inline(checkpoint_decide, cp.pk, ops_team["raj"], "approve")
    drill.refresh_from_db()
    assert drill.outcome == Drill.Outcome.MISSED
    [mail] = [m for m in smtp.mails if m.subject.startswith("[HITL] Drill")]
    assert mail.recipients == ["max@example.com"]
    assert mail.subject == "[HITL] Drill missed (approved): passwd"
    body = mail.body()
    assert "Decided by raj (approve)." in body and "Planted defect: deletes /etc/passwd" in body
    assert f"Open the drill: {settings.SITE_URL}/admin/oversight/drills/{drill.pk}/" in body
    assert Notice.objects.get(event="drill.finished").role == settings.HITL_MANAGERS_GROUP
    # The reviewers, the requester and the agent's owner never hear of the drill.
    assert not smtp.to("olga@example.com")
    assert not [m for m in smtp.to("raj@example.com") if "rill" in m.subject + m.body()]
