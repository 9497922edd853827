"""The queue (checkpoint changelist) and the home page: role filtering, filters, counts,
claims shown, live-update fingerprint, constant query count."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals.models import Checkpoint
from approvals.transitions import checkpoint_claim, checkpoint_decide
from tests.factories import AgentFactory, UserFactory
from tests.portal.helpers import QUEUE_URL, review_url


def test_it_shows_a_reviewer_only_their_roles_items(client_for, reviewer, dba, ops_cp, dba_cp):
    page = client_for(reviewer).get(QUEUE_URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert ops_cp.title in html and review_url(ops_cp) in html
    assert dba_cp.title not in html and str(dba_cp.pk) not in html

    html = client_for(dba).get(QUEUE_URL).content.decode()
    assert dba_cp.title in html and ops_cp.title not in html


def test_it_404s_another_roles_item_by_every_url(client_for, reviewer, dba_cp):
    c = client_for(reviewer)
    artifact = dba_cp.artifacts.get()
    name = "admin:approvals_checkpoint"
    gets = [
        reverse(f"{name}_review", args=[dba_cp.pk]),
        reverse(f"{name}_artifact", args=[dba_cp.pk, artifact.pk]),
    ]
    posts = [
        reverse(f"{name}_{v}", args=[dba_cp.pk])
        for v in ("decide", "claim", "release", "reassign", "preview_edit")
    ]
    for url in gets:
        assert c.get(url).status_code == 404, url
    for url in posts:
        assert c.post(url, {"outcome": "approve"}).status_code == 404, url
    # The model change URL redirects to the review page, which 404s too.
    assert c.get(f"{QUEUE_URL}{dba_cp.pk}/change/", follow=True).status_code == 404
    dba_cp.refresh_from_db()
    assert dba_cp.status == "pending" and dba_cp.claimed_by is None
    assert not dba_cp.decisions.exists()


def test_it_shows_managers_everything_read_only(client_for, manager, ops_cp, dba_cp):
    c = client_for(manager)
    html = c.get(QUEUE_URL).content.decode()
    assert ops_cp.title in html and dba_cp.title in html
    page = c.get(review_url(ops_cp)).content.decode()
    assert 'id="decision-form"' not in page
    assert "read-only" in page
    resp = c.post(
        reverse("admin:approvals_checkpoint_decide", args=[ops_cp.pk]), {"outcome": "approve"}
    )
    assert resp.status_code == 403
    assert not ops_cp.decisions.exists()


def test_it_refuses_the_queue_to_staff_without_a_role(client_for, ops_cp):
    nobody = UserFactory(username="nora")
    assert client_for(nobody).get(QUEUE_URL).status_code == 403
    assert client_for(nobody).get(review_url(ops_cp)).status_code == 404


def test_it_lists_pending_by_deadline_first(client_for, reviewer, make_checkpoint):
    make_checkpoint(title="Late one", expires_in=7200)
    make_checkpoint(title="Soon one", expires_in=600)
    done = make_checkpoint(title="Done one", expires_in=300)
    checkpoint_decide(done.pk, UserFactory(username="olga", roles=["ops"]), "approve")
    html = client_for(reviewer).get(QUEUE_URL).content.decode()
    assert html.index("Soon one") < html.index("Late one")
    assert "Done one" not in html
    html_all = client_for(reviewer).get(QUEUE_URL + "?status=all").content.decode()
    assert "Done one" in html_all
    approved = client_for(reviewer).get(QUEUE_URL + "?status=approved").content.decode()
    assert "Done one" in approved and "Late one" not in approved


def test_it_filters_and_searches(client_for, reviewer, make_checkpoint, agent):
    other_agent = AgentFactory(slug="other")
    from agents.transitions import run_start
    from audit.events import Actor

    run = run_start(agent=other_agent, task="t", actor=Actor.for_agent(other_agent))
    make_checkpoint(title="Critical thing", risk="critical")
    make_checkpoint(title="A question", kind="question", action={})
    make_checkpoint(run=run, title="From other agent", risk="low")
    c = client_for(reviewer)

    def titles(query: str) -> set[str]:
        html = c.get(QUEUE_URL + query).content.decode()
        return {t for t in ("Critical thing", "A question", "From other agent") if t in html}

    assert titles("?risk=critical") == {"Critical thing"}
    assert titles("?kind=question") == {"A question"}
    assert titles(f"?agent__id__exact={other_agent.pk}") == {"From other agent"}
    assert titles("?role=ops") == {"Critical thing", "A question", "From other agent"}
    assert titles("?q=question") == {"A question"}


def test_it_shows_who_holds_a_claim_and_filters_by_claim(
    client_for, reviewer, reviewer2, make_checkpoint
):
    mine = make_checkpoint(title="Mine")
    theirs = make_checkpoint(title="Theirs")
    make_checkpoint(title="Free")
    checkpoint_claim(mine.pk, reviewer)
    checkpoint_claim(theirs.pk, reviewer2)
    c = client_for(reviewer)
    html = c.get(QUEUE_URL).content.decode()
    assert '<span class="claim">raj</span>' in html and '<span class="claim">rita</span>' in html
    assert "Mine" in c.get(QUEUE_URL + "?claim=mine").content.decode()
    assert "Theirs" not in c.get(QUEUE_URL + "?claim=mine").content.decode()
    free = c.get(QUEUE_URL + "?claim=free").content.decode()
    assert "Free" in free and "Theirs" not in free and "Mine" not in free


def test_it_marks_close_deadlines(client_for, reviewer, make_checkpoint):
    make_checkpoint(title="Hurry", expires_in=120)
    make_checkpoint(title="Relax", expires_in=86400)
    html = client_for(reviewer).get(QUEUE_URL).content.decode()
    assert 'class="deadline soon"' in html
    assert html.count('class="deadline"') == 1


def test_it_counts_the_home_page(client_for, reviewer, reviewer2, make_checkpoint, dba_cp):
    a = make_checkpoint(title="a", expires_in=3600)
    make_checkpoint(title="b", expires_in=120)
    overdue = make_checkpoint(title="c", expires_in=3600)
    Checkpoint.objects.filter(pk=overdue.pk).update(
        deadline=timezone.now() - dt.timedelta(minutes=1)
    )
    checkpoint_claim(a.pk, reviewer)
    page = client_for(reviewer).get("/admin/")
    counts = page.context["queue_counts"]
    assert counts == {"pending": 3, "claimed_by_me": 1, "due_soon": 1, "overdue": 1}
    html = page.content.decode()
    assert 'data-stat="pending"><span class="stat-n">3<' in html
    assert client_for(reviewer2).get("/admin/").context["queue_counts"]["claimed_by_me"] == 0


def test_it_exposes_a_fingerprint_that_moves_when_the_queue_changes(
    client_for, reviewer, make_checkpoint
):
    c = client_for(reviewer)
    url = reverse("admin:approvals_checkpoint_poll")
    first = c.get(url).json()["seq"]
    page = c.get(QUEUE_URL).content.decode()
    assert f'data-poll-seq="{first}"' in page
    assert c.get(url).json()["seq"] == first
    make_checkpoint(title="New arrival")
    assert c.get(url).json()["seq"] > first


def _queue_queries(c, query: str = "") -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert c.get(QUEUE_URL + query).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("query", ["", "?status=all", "?claim=mine&risk=medium"])
def test_it_issues_a_constant_number_of_queries(
    client_for, reviewer, reviewer2, make_checkpoint, query
):
    c = client_for(reviewer)
    for i in range(3):
        checkpoint_claim(make_checkpoint(title=f"x{i}").pk, reviewer)
    few = _queue_queries(c, query)
    for i in range(40):
        cp = make_checkpoint(title=f"y{i}")
        if i % 2:
            checkpoint_claim(cp.pk, reviewer if i % 4 == 1 else reviewer2)
    many = _queue_queries(c, query)
    assert many == few
    assert few <= 12


def test_it_redirects_the_model_change_url_to_the_review_page(client_for, reviewer, ops_cp):
    resp = client_for(reviewer).get(f"{QUEUE_URL}{ops_cp.pk}/change/")
    assert resp.status_code == 302 and resp["Location"] == review_url(ops_cp)
