"""The oversight pages: managers and superusers only (404 for everyone else, on every URL and
export); what the dashboard, reviewers page, audit explorer and timeline show."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib import admin
from django.urls import reverse
from django.urls.converters import IntConverter, StringConverter, UUIDConverter

from agents.services import run_event_add
from approvals.models import Checkpoint
from audit.models import AuditEvent
from core.ledger.sequencer import sequence_pending
from oversight import analytics as metrics
from oversight import drills
from oversight import urls as oversight_urls_module
from tests.factories import UserFactory
from tests.oversight.conftest import at

pytestmark = pytest.mark.django_db


def oversight_urls(cp) -> list[tuple[str, str]]:
    return [
        ("get", reverse("admin:oversight_dashboard")),
        ("get", reverse("admin:oversight_reviewers")),
        ("get", reverse("admin:oversight_drills")),
        ("get", reverse("admin:oversight_drill_new")),
        ("get", reverse("admin:oversight_audit")),
        ("get", reverse("admin:oversight_timeline", args=[cp.pk])),
        ("get", reverse("admin:oversight_export_audit", args=["csv"])),
        ("get", reverse("admin:oversight_export_audit", args=["jsonl"])),
        ("get", reverse("admin:oversight_export_checkpoints", args=["csv"])),
        ("get", reverse("admin:oversight_export_decisions", args=["jsonl"])),
        ("get", reverse("admin:oversight_export_edits")),
        ("get", reverse("admin:oversight_export_evidence")),
        ("post", reverse("admin:oversight_audit_verify")),
        ("post", reverse("admin:oversight_drill_new")),
    ]


@pytest.fixture
def drill(known, people):
    source = known["decided"][0]
    with at(500):
        return drills.drill_schedule(
            user=people["max"], name="passwd", defect="deletes /etc/passwd",
            request=drills.request_from(source), source=source,
        )  # fmt: skip


def every_oversight_url(cp, drill) -> dict[str, str]:
    """Every URL `oversight.urls` mounts, by name, built from its patterns: one added there
    is checked here without being listed."""
    values = {IntConverter: drill.pk, UUIDConverter: cp.pk, StringConverter: "csv"}
    urls = {}
    for pattern in oversight_urls_module.urlpatterns(admin.site):
        kwargs = {name: values[type(c)] for name, c in pattern.pattern.converters.items()}
        urls[pattern.name] = reverse(f"admin:{pattern.name}", kwargs=kwargs)
    return urls


def test_reviewers_get_404_on_every_oversight_url(known, people, client_for, drill):
    cp = known["decided"][0]
    urls = every_oversight_url(cp, drill)
    assert {"oversight_drill", "oversight_drill_withdraw", "oversight_export_edits"} <= set(urls)
    reviewer = client_for(people["rita"])
    seen_before = AuditEvent.objects.count()
    for name, url in urls.items():
        for method in ("get", "post"):
            response = getattr(reviewer, method)(url)
            assert response.status_code == 404, (method, name, url)
    assert AuditEvent.objects.count() == seen_before  # no export, no verification recorded
    drill.refresh_from_db()
    assert drill.outcome == ""  # not withdrawn


def test_anonymous_people_are_sent_to_log_in(known, client, drill):
    for name, url in every_oversight_url(known["decided"][0], drill).items():
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302 and "/login" in response["Location"], name


def test_staff_without_a_role_and_agents_get_nothing(known, client_for, client):
    nobody = client_for(UserFactory(username="nobody", roles=[]))
    assert nobody.get(reverse("admin:oversight_dashboard")).status_code == 404


def test_managers_and_superusers_see_the_pages(known, people, client_for):
    cp = known["decided"][0]
    admin = UserFactory(username="root", is_superuser=True)
    for user in (people["max"], admin):
        c = client_for(user)
        for method, url in oversight_urls(cp):
            if method == "get":
                response = c.get(url)
                assert response.status_code == 200, url


def test_a_manager_without_model_permissions_opens_every_page_the_oversight_pages_link_to(
    known, people, client_for
):
    """The production guide puts managers in `managers` and grants that group nothing (no
    seed_demo view permissions): runs, agents, policies and review pages must open anyway,
    read-only."""
    manager = people["max"]
    assert not manager.get_all_permissions()
    c = client_for(manager)
    cp = known["decided"][0]
    with at(400):
        metrics.refresh_rollups()
        pages = [
            reverse("admin:oversight_dashboard"),
            reverse("admin:oversight_reviewers"),
            reverse("admin:oversight_drills"),
            reverse("admin:oversight_audit"),
            reverse("admin:oversight_timeline", args=[cp.pk]),
        ]
        links = set()
        for page in pages:
            html = c.get(page, {"period": "custom", "start": "2026-11-02", "end": "2026-11-02"})
            assert html.status_code == 200, page
            links |= set(re.findall(r'href="(/admin/[^"#]*)"', html.content.decode()))
        expected = {
            reverse("admin:agents_run_changelist"),
            reverse("admin:agents_run_change", args=[cp.run_id]),
            reverse("admin:agents_agent_change", args=[cp.agent_id]),
            reverse("admin:approvals_policy_change", args=[cp.policy_id]),
            reverse("admin:approvals_checkpoint_review", args=[cp.pk]),
        }
        assert expected <= {link.split("?")[0] for link in links}
        for link in sorted(links):
            assert c.get(link.replace("&amp;", "&")).status_code == 200, link
        run_page = c.get(reverse("admin:agents_run_change", args=[cp.run_id])).content.decode()
        assert cp.agent.slug in run_page and 'name="_save"' not in run_page  # read-only
        assert c.post(reverse("admin:agents_run_change", args=[cp.run_id]), {}).status_code == 403
        policy_url = reverse("admin:approvals_policy_change", args=[cp.policy_id])
        assert 'name="_save"' not in c.get(policy_url).content.decode()
        assert c.post(policy_url, {"name": "renamed"}).status_code == 403
    assert not AuditEvent.objects.filter(verb="policy.updated").exists()
    # the run page's inlines (its timeline, its executed steps) show too
    waiting = known["pending"].run
    run_event_add(waiting, kind="observation", message="looked at the logs first")
    page = c.get(reverse("admin:agents_run_change", args=[waiting.pk])).content.decode()
    assert "looked at the logs first" in page
    # reviewers' view of runs is still their role's (tests/portal/test_admin_access.py)
    assert client_for(people["rita"]).get(reverse("admin:agents_run_changelist")).status_code == 403


def test_a_manager_without_model_permissions_reads_the_managers_admin_lists(
    known, people, client_for
):
    """The audit events, the ledger, dead letters and the outboxes: managers read them (the
    README sends them there) with no model permission; reviewers never; nobody edits."""
    manager = people["max"]
    assert not manager.get_all_permissions()
    lists = [
        "admin:audit_auditevent_changelist",
        "admin:core_treehead_changelist",
        "admin:core_receipt_changelist",
        "admin:agents_deadletter_changelist",
        "admin:agents_webhookdelivery_changelist",
        "admin:notifications_delivery_changelist",
    ]
    for name in lists:
        assert client_for(manager).get(reverse(name)).status_code == 200, name
        assert client_for(people["rita"]).get(reverse(name)).status_code == 403, name
    event = AuditEvent.objects.first()
    page = client_for(manager).get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


def test_the_home_page_and_nav_link_to_oversight_for_managers_only(known, people, client_for):
    page = client_for(people["max"]).get(reverse("admin:index")).content.decode()
    assert reverse("admin:oversight_dashboard") in page
    page = client_for(people["rita"]).get(reverse("admin:index")).content.decode()
    assert reverse("admin:oversight_dashboard") not in page


def test_the_dashboard_shows_figures_tables_and_chart_data(known, people, client_for):
    with at(400):
        metrics.refresh_rollups()
        response = client_for(people["max"]).get(
            reverse("admin:oversight_dashboard"),
            {"period": "custom", "start": "2026-11-02", "end": "2026-11-02"},
        )
    assert response.status_code == 200
    page = response.content.decode()
    stat = dict(re.findall(r'data-stat="([\w-]+)"><span class="stat-n">([^<]+)<', page))
    assert stat["requests"] == "10" and stat["decided"] == "7"
    assert stat["pending"] == "1" and stat["overdue"] == "1"
    assert stat["ttd-p50"] == "40 s"
    assert "bot · delete_files" in page and "sql: a DBA within two minutes" in page
    # time to resume p50 / p90 / p99 by type (the agent read each decision 5 s after it)
    deletes = re.search(r"<td>bot · delete_files</td>(.*?)</tr>", page, re.S).group(1)
    cells = re.findall(r'<td class="num"[^>]*>([^<]*)</td>', deletes)
    assert cells[5:8] == ["35 s", "81 s", "103 s"] and "resume p99" in page
    outcomes = json.loads(
        re.search(
            r'<script id="chart-outcomes" type="application/json">(.*?)</script>', page
        ).group(1)
    )
    assert outcomes["series"][0]["data"] == [5, 1, 1, 0, 1, 1]
    assert 'data-chart="chart-depth"' in page and "chart.umd.min.js" in page
    assert "delete pending" in page  # breaching, linked to its timeline
    assert reverse("admin:oversight_timeline", args=[known["pending"].pk]) in page


def test_bad_filters_are_a_400_with_field_errors(people, client_for):
    c = client_for(people["max"])
    response = c.get(reverse("admin:oversight_dashboard"), {"period": "custom", "start": "x"})
    assert response.status_code == 400
    assert "Enter a valid date" in response.content.decode()
    response = c.get(reverse("admin:oversight_dashboard"), {"period": "5"})
    assert response.status_code == 400
    response = c.get(reverse("admin:oversight_audit"), {"actor": "a\x00b"})
    assert response.status_code == 400
    response = c.get(reverse("admin:oversight_export_checkpoints", args=["xml"]))
    assert response.status_code == 404


FAR_OFF = [
    {"period": "custom", "start": "9999-12-30", "end": "9999-12-31"},  # no day after it
    {"period": "custom", "start": "0001-01-01", "end": "0001-01-02"},
    {"period": "custom", "start": "1999-12-31", "end": "2000-01-01"},
    {"end": "9999-12-31"},
]


@pytest.mark.parametrize("params", FAR_OFF)
def test_far_off_dates_are_a_400_with_field_errors_on_every_page_and_export(
    people, client_for, params
):
    c = client_for(people["max"])
    with at(0):
        for name in ("oversight_dashboard", "oversight_reviewers", "oversight_audit"):
            response = c.get(reverse(f"admin:{name}"), params)
            assert response.status_code == 400, name
            assert "Pick a day between 2000 and 2027" in response.content.decode(), name
        for name, args in [
            ("oversight_export_audit", ["csv"]),
            ("oversight_export_checkpoints", ["csv"]),
            ("oversight_export_decisions", ["jsonl"]),
            ("oversight_export_edits", []),
            ("oversight_export_evidence", []),
        ]:
            response = c.get(reverse(f"admin:{name}", args=args), params)
            assert response.status_code == 400, name
            errors = response.json()["errors"]
            assert set(errors) <= {"start", "end"} and errors, name
    assert not AuditEvent.objects.filter(verb="export.created").exists()


def test_the_first_and_last_possible_days_are_fine(people, client_for):
    c = client_for(people["max"])
    with at(0):
        response = c.get(
            reverse("admin:oversight_audit"), {"start": "2000-01-01", "end": "2027-12-31"}
        )
        assert response.status_code == 200
        response = c.get(
            reverse("admin:oversight_dashboard"),
            {"period": "custom", "start": "2026-01-01", "end": "2027-12-31"},
        )
        assert response.status_code == 200


def test_the_reviewers_page_takes_at_most_90_days(people, client_for):
    c = client_for(people["max"])
    with at(0):
        response = c.get(
            reverse("admin:oversight_reviewers"),
            {"period": "custom", "start": "2026-08-05", "end": "2026-11-02"},
        )
        assert response.status_code == 200  # 90 days, both ends included
        assert "At most 90 days at once" in response.content.decode()  # the page says so
        response = c.get(
            reverse("admin:oversight_reviewers"),
            {"period": "custom", "start": "2026-08-04", "end": "2026-11-02"},
        )
        assert response.status_code == 400
        assert "At most 90 days at once on this page" in response.content.decode()
        response = c.get(reverse("admin:oversight_reviewers"), {"period": "90"})
        assert response.status_code == 200
        # the dashboard still takes two years
        response = c.get(
            reverse("admin:oversight_dashboard"),
            {"period": "custom", "start": "2025-01-01", "end": "2026-11-02"},
        )
        assert response.status_code == 200


def test_the_reviewers_page_lists_each_reviewer(known, people, client_for):
    with at(400):
        response = client_for(people["max"]).get(
            reverse("admin:oversight_reviewers"),
            {"period": "custom", "start": "2026-11-02", "end": "2026-11-02"},
        )
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-reviewer="rita"' in page and 'data-reviewer="dora"' in page


def test_the_audit_explorer_tells_events_in_words_with_links(known, people, client_for):
    c = client_for(people["max"])
    cp = known["decided"][4]  # rejected by rita after 100 s
    page = c.get(reverse("admin:oversight_audit"), {"target": str(cp.pk)}).content.decode()
    timeline = reverse("admin:oversight_timeline", args=[cp.pk])
    assert f'“<a href="{timeline}">delete 4</a>”' in page
    assert "rejected" in page and "routed to ops ×1 by deletes: ops within a minute" in page
    assert f'href="{reverse("admin:oversight_audit")}?actor=rita">rita</a> rejected' in page
    page = c.get(reverse("admin:oversight_audit"), {"actor": "dora"}).content.decode()
    verbs = re.findall(r'data-verb="([\w.]+)"', page)
    assert sorted(verbs) == ["checkpoint.approved"] * 2 + ["decision.recorded"] * 2
    assert "approved with edits" in page
    assert "-  &quot;n&quot;: &quot;drop table&quot;" not in page
    page = c.get(reverse("admin:oversight_audit"), {"verb": "checkpoint.expired"}).content.decode()
    assert page.count("data-id=") == 1 and "which region?" in page
    page = c.get(
        reverse("admin:oversight_audit"), {"agent": "bot", "verb": "run.started"}
    ).content.decode()
    assert page.count("data-id=") == 10


def test_the_explorer_pages_newest_first(known, people, client_for, monkeypatch):
    from oversight import views

    monkeypatch.setattr(views, "PAGE", 20)
    c = client_for(people["max"])
    first = c.get(reverse("admin:oversight_audit")).content.decode()
    ids = [int(s) for s in re.findall(r'data-id="(\d+)"', first)]
    assert len(ids) == 20 and ids == sorted(ids, reverse=True)
    older = re.search(r'href="\?([^"]*before=\d+[^"]*)" id="older"', first).group(1)
    second = c.get(
        reverse("admin:oversight_audit") + "?" + older.replace("&amp;", "&")
    ).content.decode()
    more = [int(s) for s in re.findall(r'data-id="(\d+)"', second)]
    newest_older = AuditEvent.objects.filter(id__lt=min(ids)).order_by("-id").first()
    assert more and max(more) == newest_older.id


def test_a_checkpoint_timeline_tells_its_whole_story(policies, bot, people, client_for):
    from api.access import note_agent_read
    from approvals.transitions import checkpoint_claim, checkpoint_decide
    from tests.oversight.conftest import request_one

    with at(0):
        cp = request_one(bot)
    with at(3):
        client_for(people["raj"]).get(reverse("admin:approvals_checkpoint_review", args=[cp.pk]))
    with at(4):
        checkpoint_claim(cp.pk, people["raj"])
    with at(20):
        checkpoint_decide(
            cp.pk, people["raj"], "modify", action={"tool": "delete_files", "args": {"n": 1}}
        )
    with at(22):
        cp.refresh_from_db()
        note_agent_read(cp)
        page = client_for(people["max"]).get(reverse("admin:oversight_timeline", args=[cp.pk]))
    page = page.content.decode()
    stages = re.findall(r'data-stage="(\w+)"', page)
    assert stages == ["requested", "waiting", "viewed", "claimed", "vote", "resolved", "resumed"]
    assert "raj</a> opened" in page and "raj</a> approved with edits" in page
    assert "learned the outcome of" in page and "(read it through the API)" in page
    assert "+    &quot;n&quot;: 1" in page  # the edit's diff
    assert "Time to decision <strong>20 s</strong>" in page
    assert "Time to resume <strong>22 s</strong>" in page


def test_verify_now_records_the_result_and_shows_it(known, people, client_for):
    sequence_pending()  # what the standing sequencer does within milliseconds
    logged = AuditEvent.objects.count()
    c = client_for(people["max"])
    response = c.post(reverse("admin:oversight_audit_verify"))
    assert response.status_code == 302
    event = AuditEvent.objects.filter(verb="audit.verified").get()
    assert event.data["ok"] is True and event.data["checked"] == logged
    assert event.actor_label == "max"
    page = c.get(response["Location"]).content.decode()
    assert 'class="verify-result ok"' in page and f"OK, {logged} events" in page


def test_verify_now_names_the_first_tampered_event(known, people, client_for):
    sequence_pending()
    victim = AuditEvent.objects.order_by("seq")[5]
    AuditEvent.objects.filter(pk=victim.pk).update(actor_label="mallory")
    c = client_for(people["max"])
    c.post(reverse("admin:oversight_audit_verify"))
    page = c.get(reverse("admin:oversight_audit")).content.decode()
    assert 'class="verify-result broken"' in page and f"BROKEN at #{victim.seq}" in page


def test_a_review_page_view_is_recorded_once_per_person(known, people, client_for):
    cp = known["pending"]
    url = reverse("admin:approvals_checkpoint_review", args=[cp.pk])
    for _ in range(3):
        assert client_for(people["rita"]).get(url).status_code == 200
    client_for(people["raj"]).get(url)
    views = AuditEvent.objects.filter(verb="checkpoint.viewed", target_id=str(cp.pk))
    assert sorted(views.values_list("actor_label", flat=True)) == ["raj", "rita"]
    assert sorted(cp.views.values_list("user__username", flat=True)) == ["raj", "rita"]
    assert Checkpoint.objects.filter(pk=cp.pk, status="pending").exists()


def test_managers_stay_read_only_on_the_requests_themselves(known, people, client_for):
    from approvals.models import Decision

    cp = known["pending"]
    with at(400):
        response = client_for(people["max"]).post(
            reverse("admin:approvals_checkpoint_decide", args=[cp.pk]), {"outcome": "approve"}
        )
    assert response.status_code == 403
    assert not Decision.objects.filter(checkpoint=cp).exists()
    cp.refresh_from_db()
    assert cp.status == Checkpoint.Status.PENDING


def test_managers_get_405_for_a_method_a_page_does_not_take(known, people, drill, client_for):
    """`core.admin_pages.page` enforces each view's methods (for managers; anyone else got
    a 404 above, whatever the method)."""
    c = client_for(people["max"])
    dashboard = c.post(reverse("admin:oversight_dashboard"))
    assert dashboard.status_code == 405 and dashboard["Allow"] == "GET, HEAD"
    withdraw = c.get(reverse("admin:oversight_drill_withdraw", kwargs={"pk": drill.pk}))
    assert withdraw.status_code == 405 and withdraw["Allow"] == "POST"
