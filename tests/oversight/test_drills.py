"""Drills: synthetic requests routed like real ones, indistinguishable to reviewers, that never
resume an agent or call one back; the result is recorded and shown to managers only."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from agents.models import Agent, Run, WebhookDelivery
from agents.services import AGENT_KEYS
from agents.sweeps import reconcile
from approvals.models import Checkpoint
from approvals.services import USER_TOKENS
from approvals.sweeps import expire_overdue
from approvals.transitions import checkpoint_decide
from audit.events import Actor
from audit.models import AuditEvent
from hitlportal.sweeps import run_all
from oversight import analytics as metrics
from oversight import drills
from oversight.models import Drill
from tests.api.conftest import Api
from tests.factories import AgentFactory
from tests.oversight.conftest import at, request_one

pytestmark = pytest.mark.django_db

RESUME = "agents.tasks.resume_run"
EXECUTE = "agents.tasks.execute_run"
WEBHOOK = "agents.tasks.deliver_webhook"


@pytest.fixture
def hooked(bot):
    bot.callback_url = "http://127.0.0.1:9/hook"  # never called: nothing may be sent
    bot.save()
    return bot


@pytest.fixture
def source(policies, hooked, people):
    from approvals.artifacts import ArtifactInput

    with at(0):
        cp = request_one(
            hooked,
            title="Delete 3 old logs",
            summary="Frees 2 GB",
            context={"request": "clean up", "reasoning": ["old"]},
            artifacts=[ArtifactInput(name="plan.diff", kind="diff", content="-a.log\n")],
        )
    with at(10):
        checkpoint_decide(cp.pk, people["rita"], "approve")
    return cp


def plant(source, people, **change):
    request = drills.request_from(source)
    request["action"] = {"tool": "delete_files", "args": {"paths": ["/etc/passwd"]}}
    request.update(change)
    with at(100):
        return drills.drill_schedule(
            user=people["max"], name="passwd", defect="deletes /etc/passwd", request=request,
            source=source,
        )  # fmt: skip


def test_it_is_asked_like_its_source(source, people):
    drill = plant(source, people)
    cp = drill.checkpoints.get()
    assert drill.released_at is not None and drill.run_id == cp.run_id
    assert (cp.agent_id, cp.kind, cp.title, cp.summary, cp.risk) == (
        source.agent_id,
        source.kind,
        source.title,
        source.summary,
        source.risk,
    )
    assert (cp.policy_id, cp.current_role, cp.sla_seconds) == (source.policy_id, "ops", 60)
    assert cp.action["args"] == {"paths": ["/etc/passwd"]}
    assert [(a.name, a.sha256) for a in cp.artifacts.all()] == [
        (a.name, a.sha256) for a in source.artifacts.all()
    ]
    # Every event a reviewer can see names the agent, as for a real request.
    events = AuditEvent.objects.filter(target_id__in=[str(cp.pk), str(cp.run_id)])
    assert set(events.values_list("actor_type", "actor_label")) == {("agent", "bot")}
    assert Run.objects.get(pk=cp.run_id).status == Run.Status.WAITING
    scheduled = AuditEvent.objects.get(verb="drill.scheduled")
    assert scheduled.actor_label == "max" and scheduled.data["defect"] == "deletes /etc/passwd"


def test_reviewers_cannot_tell_it_from_a_real_request(source, people, client_for):
    drill = plant(source, people)
    cp = drill.checkpoints.get()
    with at(101):
        real = request_one(source.agent, title="Delete 3 old logs", summary="Frees 2 GB")
    rita = client_for(people["rita"])
    queue = rita.get(reverse("admin:approvals_checkpoint_changelist")).content.decode()
    assert str(cp.pk) in queue
    page = rita.get(reverse("admin:approvals_checkpoint_review", args=[cp.pk])).content.decode()
    assert "drill" not in page.lower() and "passwd" in page and "deletes /etc" not in page
    api = Api(USER_TOKENS.create(people["rita"]))
    drill_json = api.get(f"checkpoints/{cp.pk}/").json()
    real_json = api.get(f"checkpoints/{real.pk}/").json()
    assert set(drill_json) == set(real_json) and "drill" not in json.dumps(drill_json).lower()
    run_page = rita.get(reverse("admin:agents_run_change", args=[cp.run_id])).content.decode()
    assert "drill" not in run_page.lower()


def test_the_agent_never_sees_it(source, people):
    drill = plant(source, people)
    cp = drill.checkpoints.get()
    api = Api(AGENT_KEYS.create(source.agent, Actor.system("test")))
    assert api.get(f"checkpoints/{cp.pk}/").status_code == 404
    assert api.get(f"checkpoints/{cp.pk}/wait", timeout=0).status_code == 404
    assert api.get(f"runs/{cp.run_id}/").status_code == 404
    assert str(cp.pk) not in json.dumps(api.get("checkpoints/").json())
    assert str(cp.run_id) not in json.dumps(api.get("runs/").json())
    assert api.post(f"checkpoints/{cp.pk}/cancel/", {}).status_code == 404


def test_a_caught_drill_resumes_nothing_and_calls_nobody(
    source, people, broker, django_capture_on_commit_callbacks
):
    drill = plant(source, people)
    cp = drill.checkpoints.get()
    deliveries = WebhookDelivery.objects.count()
    with at(130), django_capture_on_commit_callbacks(execute=True):
        checkpoint_decide(cp.pk, people["rita"], "reject", comment="that is /etc/passwd")
    with at(100_000), django_capture_on_commit_callbacks(execute=True):
        reconcile()
    drill_run = str(cp.run_id)
    assert drill_run not in {a[0] for a in broker.calls(RESUME) + broker.calls(EXECUTE)}
    assert {a[0] for a in broker.calls(RESUME)} == {str(source.run_id)}  # the real one, lost
    assert WebhookDelivery.objects.count() == deliveries
    assert not WebhookDelivery.objects.filter(checkpoint=cp).exists()
    source_hooks = {str(pk) for pk in WebhookDelivery.objects.values_list("pk", flat=True)}
    assert {args[0] for args in broker.calls(WEBHOOK)} <= source_hooks  # the real one's only
    drill.refresh_from_db()
    assert drill.outcome == Drill.Outcome.CAUGHT
    run = Run.objects.get(pk=cp.run_id)
    assert run.status == Run.Status.COMPLETED
    finished = AuditEvent.objects.get(verb="drill.finished")
    assert finished.data["outcome"] == "caught" and finished.data["votes"] == [
        ["rita", "reject", 0]
    ]


def test_a_missed_drill_of_a_hosted_agent_runs_nothing(
    policies, people, broker, django_capture_on_commit_callbacks
):
    hosted = AgentFactory(slug="janitor", kind=Agent.Kind.HOSTED, runtime="agents.builtin.x.X")
    request = {"agent": "janitor", "kind": "approval", "title": "Delete logs",
               "action": {"tool": "delete_files", "args": {"paths": ["/"]}}}  # fmt: skip
    with at(0):
        drill = drills.drill_schedule(
            user=people["max"], name="root", defect="deletes /", request=request
        )
    cp = drill.checkpoints.get()
    with at(5), django_capture_on_commit_callbacks(execute=True):
        checkpoint_decide(cp.pk, people["rita"], "approve")
    with at(100_000), django_capture_on_commit_callbacks(execute=True):
        reconcile()
    assert broker.calls(RESUME) == [] and broker.calls(EXECUTE) == []
    drill.refresh_from_db()
    assert drill.outcome == Drill.Outcome.MISSED
    run = Run.objects.get(pk=cp.run_id)
    assert run.status == Run.Status.COMPLETED and not run.steps.exists()
    assert hosted.checkpoints.get().resumed_at is None


def test_an_expired_drill_in_a_batch_is_not_resumed(
    source, people, broker, django_capture_on_commit_callbacks
):
    drill = plant(source, people, expires_in=60)
    with at(0):
        real = request_one(source.agent, title="real", expires_in=60)
    with at(1000), django_capture_on_commit_callbacks(execute=True):
        assert expire_overdue()["expired"] == 2
    resumed = [args[0] for args in broker.calls(RESUME)]
    assert resumed == [str(real.run_id)]
    drill.refresh_from_db()
    assert drill.outcome == Drill.Outcome.EXPIRED


def test_a_drill_is_released_at_its_time(policies, bot, people):
    request = {"agent": "bot", "kind": "approval", "title": "Delete /etc",
               "action": {"tool": "delete_files", "args": {}}}  # fmt: skip
    from tests.oversight.conftest import T0

    with at(0):
        drill = drills.drill_schedule(
            user=people["max"], name="later", defect="deletes /etc", request=request,
            release_at=T0 + __import__("datetime").timedelta(hours=1),
        )  # fmt: skip
    assert not drill.checkpoints.exists()
    with at(3599):
        run_all()
    assert not drill.checkpoints.exists()
    with at(3600):
        assert run_all()["drills"] == {"released": 1}
        assert run_all()["drills"] == {"released": 0}
    cp = drill.checkpoints.get()
    assert cp.created_at == T0 + __import__("datetime").timedelta(hours=1)


def test_withdrawing_before_and_after_release(source, people):
    from tests.oversight.conftest import T0

    request = drills.request_from(source)
    with at(0):
        later = drills.drill_schedule(
            user=people["max"], name="later", defect="x", request=request,
            release_at=T0 + __import__("datetime").timedelta(days=1),
        )  # fmt: skip
        drills.drill_withdraw(later.pk, people["max"])
    later.refresh_from_db()
    assert later.outcome == "withdrawn" and not later.checkpoints.exists()
    with at(86400):
        assert drills.release_due() == {"released": 0}
    live = plant(source, people)
    with at(200):
        drills.drill_withdraw(live.pk, people["max"])
    cp = live.checkpoints.get()
    assert cp.status == Checkpoint.Status.CANCELLED
    assert cp.resolution_reason == "withdrawn by agent bot"  # as the agent would
    live.refresh_from_db()
    assert live.outcome == "withdrawn"


def test_drill_results_feed_the_reviewer_page(source, people, client_for):
    caught, missed = plant(source, people), plant(source, people)
    with at(110):
        client_for(people["rita"]).get(
            reverse("admin:approvals_checkpoint_review", args=[caught.checkpoints.get().pk])
        )
    with at(130):
        checkpoint_decide(caught.checkpoints.get().pk, people["rita"], "reject", comment="no")
        checkpoint_decide(missed.checkpoints.get().pk, people["raj"], "approve")
    import datetime as dt

    from tests.oversight.conftest import T0

    report = metrics.reviewer_stats(T0, T0 + dt.timedelta(days=1))
    rows = {r.username: r for r in report.rows}
    assert (rows["rita"].drills_seen, rows["rita"].drills_caught, rows["rita"].drills_missed) == (
        1,
        1,
        0,
    )
    assert rows["rita"].drill_catch_seconds == [20.0]
    assert (rows["raj"].drills_seen, rows["raj"].drills_missed) == (1, 1)
    assert rows["rita"].decisions == 1  # the real one; drills are counted apart
    page = client_for(people["max"]).get(reverse("admin:oversight_drills")).content.decode()
    assert "passwd" in page and "Caught (rejected)" in page and "Missed (approved)" in page
    detail = (
        client_for(people["max"])
        .get(reverse("admin:oversight_drill", args=[caught.pk]))
        .content.decode()
    )
    assert "Caught by <strong>rita</strong> 30 s after release" in detail


def test_managers_schedule_a_drill_from_the_form(source, people, client_for):
    c = client_for(people["max"])
    url = reverse("admin:oversight_drill_new")
    form = c.get(url, {"from": source.pk})
    assert form.status_code == 200 and "Delete 3 old logs" in form.content.decode()
    fields = {"source": source.pk, "agent": "bot", "kind": "approval", "risk": "high",
              "title": "t", "defect": "d", "expires_in": 600}  # fmt: skip
    bad = c.post(url, {**fields, "action": "{not json"})
    assert bad.status_code == 400 and "Not valid JSON" in bad.content.decode()
    action = json.dumps({"tool": "delete_files", "args": {}})
    # Within the limits of any agent's request (agents.services.check_ask): refused now.
    bad = c.post(url, {**fields, "title": "Delete\r\nBcc: all@example.com", "action": action})
    assert bad.status_code == 400 and "single line" in bad.content.decode()
    assert not Drill.objects.exists()
    good = c.post(url, {
        "source": source.pk, "agent": "bot", "kind": "approval", "risk": "high",
        "title": "Delete 3 old logs", "defect": "targets /etc", "expires_in": 600,
        "action": json.dumps({"tool": "delete_files", "args": {"paths": ["/etc"]}}),
        "artifacts": json.dumps([{"name": "plan.diff", "kind": "diff", "content": "-/etc\n"}]),
    })  # fmt: skip
    drill = Drill.objects.get()
    assert good.status_code == 302 and good["Location"].endswith(f"/drills/{drill.pk}/")
    assert drill.source == source and drill.checkpoints.get().risk == "high"
    assert drill.created_by == people["max"]


def test_the_runs_list_marks_a_drill_for_managers_only(source, people, client_for):
    from django.contrib.auth.models import Group, Permission

    view_run = Permission.objects.filter(codename__in=["view_run"])
    for role in ("ops", "managers"):
        Group.objects.get(name=role).permissions.add(*view_run)
    drill = plant(source, people)
    url = reverse("admin:agents_run_changelist")
    manager_page = client_for(people["max"]).get(url).content.decode()
    assert reverse("admin:oversight_drill", args=[drill.pk]) in manager_page
    reviewer_page = client_for(people["rita"]).get(url).content.decode()
    assert str(drill.run_id) in reviewer_page and "drill" not in reviewer_page.lower()


def test_a_drill_whose_schema_re2_cannot_run_is_refused(source, people):
    """A manager's drill request goes through the agents' schema check (approvals.schemas)."""
    from core.exceptions import InvalidInput

    schema = {"properties": {"paths": {"items": {"pattern": r"^(/\w+)\1$"}}}}
    with pytest.raises(InvalidInput) as refused:
        plant(source, people, action={"tool": "delete_files", "args": {}, "args_schema": schema})
    assert refused.value.field == "action"
    assert "/properties/paths/items/pattern" in str(refused.value)
    assert not Drill.objects.exists()


def test_a_receiver_or_a_query_written_the_obvious_way_never_sees_a_drill(source, people):
    """Drills are left out by default: a new receiver of checkpoint_resolved (as an agent-side
    feature would write it) and a plain `Checkpoint.objects` query of the agent's requests
    never meet one; the drill is resolved through `drill_resolved` and reviewers' code reads
    it through `Checkpoint.with_drills`."""
    from approvals.signals import checkpoint_resolved, checkpoints_resolved, drill_resolved

    heard, heard_batch, drills_heard = [], [], []

    def on_resolved(sender, checkpoint, **kwargs):
        heard.append(checkpoint.pk)

    def on_batch(sender, checkpoints, **kwargs):
        heard_batch.extend(cp.pk for cp in checkpoints)

    def on_drill(sender, checkpoint, **kwargs):
        drills_heard.append(checkpoint.pk)

    checkpoint_resolved.connect(on_resolved, weak=False)
    checkpoints_resolved.connect(on_batch, weak=False)
    drill_resolved.connect(on_drill, weak=False)
    try:
        decided = plant(source, people).checkpoints.get()
        expired = plant(source, people, expires_in=60).checkpoints.get()
        assert not Checkpoint.objects.filter(pk__in=[decided.pk, expired.pk]).exists()
        assert Checkpoint.with_drills.filter(pk__in=[decided.pk, expired.pk]).count() == 2
        assert set(Checkpoint.objects.filter(agent=source.agent)) == {source}

        with at(200):
            checkpoint_decide(decided.pk, people["rita"], "reject", comment="passwd!")
        with at(10_000):
            expire_overdue()  # the batched path
    finally:
        checkpoint_resolved.disconnect(on_resolved)
        checkpoints_resolved.disconnect(on_batch)
        drill_resolved.disconnect(on_drill)
    assert heard == [] and heard_batch == []
    assert drills_heard == [decided.pk, expired.pk]
    assert Checkpoint.with_drills.get(pk=expired.pk).status == Checkpoint.Status.EXPIRED
    assert set(Drill.objects.values_list("outcome", flat=True)) == {"caught", "expired"}
