"""Starting hosted runs: the admin's "Start run" form and `manage.py startrun`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from agents.models import Run
from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.hosted.conftest import make_logs

JANITOR = "agents.builtin.log_janitor.LogJanitor"


@pytest.fixture
def janitor(hosted, sandbox):
    make_logs(sandbox / "logs", {"a.log": 9, "b.log": 1})
    return hosted("log-janitor", JANITOR)


def test_it_starts_a_run_from_the_command_and_prints_its_id_last(janitor, inline, starter):
    out = io.StringIO()
    inline(
        call_command,
        "startrun",
        "log-janitor",
        "Delete all log files older than 7 days",
        "--input",
        '{"path": "logs", "older_than_days": 7}',
        "--user",
        "stan",
        stdout=out,
    )

    run_id = out.getvalue().strip().splitlines()[-1]
    run = Run.objects.get(pk=run_id)
    assert run.task == "Delete all log files older than 7 days"
    assert run.created_by == starter
    assert run.status == Run.Status.WAITING  # executed (inline in tests) up to its checkpoint
    started = AuditEvent.objects.get(verb="run.started")
    assert started.actor_label == "stan" and started.target_id == run_id


def test_it_shows_the_checkpoint_the_run_waits_on(janitor, inline, starter):
    out = io.StringIO()
    inline(call_command, "startrun", "log-janitor", "--inline", "--user", "stan", stdout=out)
    lines = out.getvalue().splitlines()
    run = Run.objects.get(pk=lines[-1])
    cp = run.checkpoints.get()
    assert lines[0] == "Run of log-janitor is waiting for a human:"
    assert lines[1].strip().startswith(cp.title) and "role ops" in lines[1]
    assert lines[2].strip().startswith("proposes delete_old_logs(")
    assert (
        lines[3].strip()
        == f"review: http://127.0.0.1:8000/admin/approvals/checkpoint/{cp.pk}/review/"
    )

    out = io.StringIO()
    inline(call_command, "startrun", "log-janitor", "--inline", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert (
        data["status"] == "waiting" and data["waiting_on"][0]["action"]["tool"] == "delete_old_logs"
    )
    assert data["waiting_on"][0]["review_url"].endswith("/review/")


def test_it_uses_the_agents_defaults_without_task_or_input(janitor, inline):
    out = io.StringIO()
    inline(call_command, "startrun", "log-janitor", stdout=out)
    run = Run.objects.get(pk=out.getvalue().split()[-1])
    assert run.task == "Delete all log files older than 7 days"
    assert run.input["older_than_days"] == 7


def test_it_explains_what_is_wrong_on_the_command_line(janitor):
    with pytest.raises(CommandError, match="no agent 'nope' \\(hosted agents: log-janitor\\)"):
        call_command("startrun", "nope", "x")
    with pytest.raises(CommandError, match="outside the sandbox roots"):
        call_command("startrun", "log-janitor", "x", "--input", '{"path": "/etc"}')
    with pytest.raises(CommandError, match="input: not valid JSON"):
        call_command("startrun", "log-janitor", "x", "--input", "{nope")
    assert not Run.objects.exists()


def test_it_shows_the_start_form_with_the_agents_example(janitor, admin_client):
    page = admin_client.get(reverse("admin:agents_agent_start_run", args=[janitor.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Delete all log files older than 7 days" in html
    assert "delete_old_logs" in html and "always" in html
    change = admin_client.get(reverse("admin:agents_agent_change", args=[janitor.pk]))
    assert reverse("admin:agents_agent_start_run", args=[janitor.pk]) in change.content.decode()


def test_it_starts_a_run_from_the_admin_form(janitor, admin_client, admin_user, inline):
    url = reverse("admin:agents_agent_start_run", args=[janitor.pk])
    resp = inline(
        admin_client.post,
        url,
        {"task": "Clean up", "input": json.dumps({"path": "logs", "older_than_days": 7})},
    )

    run = Run.objects.get()
    assert resp.status_code == 302
    assert resp["Location"] == reverse("admin:agents_run_change", args=[run.pk])
    assert run.created_by == admin_user and run.status == Run.Status.WAITING
    detail = admin_client.get(resp["Location"])
    assert detail.status_code == 200 and "delete_old_logs" in detail.content.decode()


def test_it_shows_field_errors_and_starts_nothing(janitor, admin_client):
    url = reverse("admin:agents_agent_start_run", args=[janitor.pk])
    bad_json = admin_client.post(url, {"task": "x", "input": "[1, 2"})
    assert bad_json.status_code == 200 and "Not valid JSON" in bad_json.content.decode()
    outside = admin_client.post(url, {"task": "x", "input": '{"path": "/etc"}'})
    assert outside.status_code == 200
    assert "outside the sandbox roots" in outside.content.decode()
    assert not Run.objects.exists()


def test_it_lets_only_users_who_may_add_runs_start_them(janitor, client):
    client.force_login(UserFactory(username="viewer", roles=["ops"]))
    url = reverse("admin:agents_agent_start_run", args=[janitor.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"task": "x", "input": "{}"}).status_code == 403
    assert not Run.objects.exists()


def test_it_refuses_external_agents(agent, admin_client):
    page = admin_client.get(reverse("admin:agents_agent_start_run", args=[agent.pk]))
    assert "is not a hosted agent" in page.content.decode()
