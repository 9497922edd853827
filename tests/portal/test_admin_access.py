"""Cross-role admin pages: the audit log, runs, webhook deliveries and dead letters are
role-filtered like the queue."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission

pytestmark = pytest.mark.django_db

VIEW_PERMS = ["view_run", "view_auditevent", "view_webhookdelivery", "view_deadletter"]


@pytest.fixture
def grant_views(reviewer, manager):
    perms = Permission.objects.filter(codename__in=VIEW_PERMS)
    for name in ("ops", "managers"):
        Group.objects.get(name=name).permissions.add(*perms)


@pytest.mark.parametrize(
    "url",
    ["/admin/audit/auditevent/", "/admin/agents/webhookdelivery/", "/admin/agents/deadletter/"],
)
def test_it_keeps_cross_role_logs_to_managers(client_for, reviewer, manager, grant_views, url):
    refused = client_for(reviewer).get(url)
    assert refused.status_code == 403
    # the portal's own page (its header, a way back), not a bare "403 Forbidden"
    html = refused.content.decode()
    assert "You may not open this page" in html and "HITL Portal" in html
    assert 'href="/admin/"' in html
    assert client_for(manager).get(url).status_code == 200


def test_it_shows_a_reviewer_only_runs_they_may_review(
    client_for, reviewer, manager, grant_views, ops_cp, dba_cp
):
    page = client_for(reviewer).get("/admin/agents/run/")
    assert page.status_code == 200
    body = page.content.decode()
    assert str(ops_cp.run_id) in body and str(dba_cp.run_id) not in body
    hidden = client_for(reviewer).get(f"/admin/agents/run/{dba_cp.run_id}/change/")
    assert hidden.status_code == 302  # the admin's "does not exist" redirect
    assert client_for(reviewer).get(f"/admin/agents/run/{ops_cp.run_id}/change/").status_code == 200
    everything = client_for(manager).get("/admin/agents/run/").content.decode()
    assert str(ops_cp.run_id) in everything and str(dba_cp.run_id) in everything


def test_the_audit_trails_old_admin_addresses_lead_to_its_new_ones(client):
    """AuditEvent moved to the audit app (issue 19): bookmarks of /admin/approvals/auditevent/
    still arrive."""
    listed = client.get("/admin/approvals/auditevent/?verb=run.started")
    assert listed.status_code == 301
    assert listed["Location"] == "/admin/audit/auditevent/?verb=run.started"
    one = client.get("/admin/approvals/auditevent/7/change/")
    assert one["Location"] == "/admin/audit/auditevent/7/change/"
