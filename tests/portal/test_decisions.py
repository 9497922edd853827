"""Deciding from the review page: the same transition as the API, every error a page with a
clear message (400/403/409/413), never a 500 and never a second decision."""

from __future__ import annotations

import datetime as dt
import json

from django.test import Client
from django.utils import timezone

from approvals.models import Checkpoint, Decision
from approvals.sweeps import expire_overdue
from approvals.transitions import checkpoint_claim, checkpoint_decide
from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.portal.helpers import QUEUE_URL, decide_url, review_url


def verbs(cp) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(cp.pk))
        .order_by("pk")  # insert order: seqs come from the sequencer later
        .values_list("verb", flat=True)
    )


def test_it_approves_and_moves_on_to_the_next_item(
    client_for, reviewer, make_checkpoint, broker, django_capture_on_commit_callbacks
):
    cp = make_checkpoint(title="First", expires_in=600)
    nxt = make_checkpoint(title="Second", expires_in=1200)
    with django_capture_on_commit_callbacks(execute=True):
        resp = client_for(reviewer).post(
            decide_url(cp), {"outcome": "approve", "comment": "looks fine"}
        )
    assert resp.status_code == 302 and resp["Location"] == review_url(nxt)
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.resolved_by == reviewer
    assert cp.final_action == cp.action
    d = Decision.objects.get(checkpoint=cp)
    assert (d.outcome, d.comment, d.channel) == ("approve", "looks fine", "web")
    assert verbs(cp)[-2:] == ["decision.recorded", "checkpoint.approved"]
    # What the agent gets: its run is resumed.
    assert broker.calls("agents.tasks.resume_run") == [(str(cp.run_id),)]


def test_it_returns_to_the_queue_after_the_last_item(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint()
    resp = client_for(reviewer).post(decide_url(cp), {"outcome": "approve"})
    assert resp["Location"] == QUEUE_URL


def test_it_requires_a_reason_to_reject(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint()
    before = verbs(cp)
    resp = client_for(reviewer).post(decide_url(cp), {"outcome": "reject", "comment": "  "})
    assert resp.status_code == 400
    assert "A rejection needs a reason" in resp.content.decode()
    cp.refresh_from_db()
    assert cp.status == "pending" and not cp.decisions.exists() and verbs(cp) == before

    resp = client_for(reviewer).post(
        decide_url(cp), {"outcome": "reject", "comment": "Wrong directory"}
    )
    assert resp.status_code == 302
    cp.refresh_from_db()
    assert cp.status == "rejected" and cp.resolution_reason == "Wrong directory"


def test_it_shows_the_edit_diff_before_approving_with_edits(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint(
        action={"tool": "delete_files", "args": {"paths": ["/tmp/a.log", "/tmp/b.log"], "limit": 5}}
    )
    c = client_for(reviewer)
    edited = {"paths": ["/tmp/a.log"], "limit": 2, "dry_run": False}
    first = c.post(decide_url(cp), {"outcome": "modify", "action_args": json.dumps(edited)})
    assert first.status_code == 200
    html = first.content.decode()
    assert "Confirm: approve with these edits" in html
    assert 'class="d-del"' in html and 'class="d-add"' in html  # the rendered diff
    assert not cp.decisions.exists()
    confirm = first.context["form"].data["confirm"]
    assert confirm

    # A different edit than the one previewed is previewed again, not decided.
    other = c.post(
        decide_url(cp),
        {"outcome": "modify", "action_args": json.dumps({"x": 1}), "confirm": confirm},
    )
    assert other.status_code == 200 and not cp.decisions.exists()

    done = c.post(
        decide_url(cp), {"outcome": "modify", "action_args": json.dumps(edited), "confirm": confirm}
    )
    assert done.status_code == 302
    cp.refresh_from_db()
    assert cp.status == "approved"
    # JSON types survive: ints stay ints, booleans stay booleans.
    assert cp.final_action == {"tool": "delete_files", "args": edited}
    d = cp.decisions.get()
    assert d.outcome == "modify" and d.edited_action == cp.final_action
    event = AuditEvent.objects.get(target_id=str(cp.pk), verb="decision.recorded")
    assert '-      "/tmp/b.log"' in event.data["action_diff"]
    assert '+    "dry_run": false,' in event.data["action_diff"]


def test_it_rejects_bad_edit_json_with_a_field_error(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint()
    c = client_for(reviewer)
    for body, message in [
        ("{not json", "Not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps(cp.action["args"]), "Nothing was edited"),
    ]:
        resp = c.post(decide_url(cp), {"outcome": "modify", "action_args": body})
        assert resp.status_code == 400, body
        assert message in resp.content.decode()
    assert not cp.decisions.exists()


def test_it_previews_edits_for_the_page_script(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint()
    url = f"{QUEUE_URL}{cp.pk}/preview-edit/"
    c = client_for(reviewer)
    ok = c.post(url, {"action_args": json.dumps({"paths": []})}).json()
    assert 'class="d-del"' in ok["html"] and ok["confirm"]
    bad = c.post(url, {"action_args": "{"})
    assert bad.status_code == 400 and "Not valid JSON" in str(bad.json()["errors"])
    assert not cp.decisions.exists()


def test_it_answers_a_question_with_one_of_its_options(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint(
        kind="question",
        action={},
        title="Which env?",
        options=[{"value": "staging", "label": "Staging first"}, "production"],
    )
    c = client_for(reviewer)
    page = c.get(review_url(cp)).content.decode()
    assert "Staging first" in page and 'value="answer"' in page and 'value="approve"' not in page
    bad = c.post(decide_url(cp), {"outcome": "answer", "answer": "qa"})
    assert bad.status_code == 400 and "Pick one of the offered answers" in bad.content.decode()
    ok = c.post(decide_url(cp), {"outcome": "answer", "answer": "staging"})
    assert ok.status_code == 302
    cp.refresh_from_db()
    assert cp.status == "answered" and cp.answer == "staging"


def test_it_approves_with_a_custom_option(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint(options=["only-today", "always"])
    c = client_for(reviewer)
    assert "only-today" in c.get(review_url(cp)).content.decode()
    assert c.post(decide_url(cp), {"outcome": "approve", "answer": "never"}).status_code == 400
    assert c.post(decide_url(cp), {"outcome": "approve", "answer": "always"}).status_code == 302
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.answer == "always"


def test_it_enforces_four_eyes_in_the_page_and_the_transition(
    client_for, requester, make_checkpoint
):
    cp = make_checkpoint(requester=requester)
    c = client_for(requester)
    page = c.get(review_url(cp)).content.decode()
    assert "Four-eyes" in page and 'id="decision-form"' not in page
    resp = c.post(decide_url(cp), {"outcome": "approve"})
    assert resp.status_code == 403 and "Four-eyes" in resp.content.decode()
    assert c.post(f"{QUEUE_URL}{cp.pk}/claim/").status_code == 403
    cp.refresh_from_db()
    assert cp.status == "pending" and not cp.decisions.exists() and cp.claimed_by is None


def test_it_shows_who_won_when_someone_else_decided_first(
    client_for, reviewer, reviewer2, make_checkpoint
):
    cp = make_checkpoint()
    c = client_for(reviewer)
    page = c.get(review_url(cp))  # rita opens the page ...
    assert page.status_code == 200
    checkpoint_decide(cp.pk, reviewer2, "reject", comment="Not today")  # ... raj is faster
    resp = c.post(decide_url(cp), {"outcome": "approve"})
    assert resp.status_code == 409
    html = resp.content.decode()
    assert "raj" in html and "Rejected" in html and "not</strong> recorded" in html
    assert list(cp.decisions.values_list("reviewer__username", flat=True)) == ["raj"]
    cp.refresh_from_db()
    assert cp.status == "rejected"


def test_it_shows_expiry_as_the_winner(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint()
    Checkpoint.objects.filter(pk=cp.pk).update(deadline=timezone.now() - dt.timedelta(seconds=1))
    c = client_for(reviewer)
    resp = c.post(decide_url(cp), {"outcome": "approve"})
    assert resp.status_code == 409 and "expiry" in resp.content.decode()
    expire_overdue()
    resp = c.post(decide_url(cp), {"outcome": "approve"})
    assert resp.status_code == 409 and "Expired" in resp.content.decode()
    assert not cp.decisions.exists()


def test_it_refuses_a_decision_while_someone_else_holds_the_claim(
    client_for, reviewer, reviewer2, make_checkpoint
):
    cp = make_checkpoint()
    checkpoint_claim(cp.pk, reviewer2)
    c = client_for(reviewer)
    page = c.get(review_url(cp)).content.decode()
    assert "raj</strong> is working on this" in page and 'id="decision-form"' not in page
    resp = c.post(decide_url(cp), {"outcome": "approve"})
    assert resp.status_code == 409 and "claimed by raj" in resp.content.decode()
    assert not cp.decisions.exists()


def test_it_never_decides_on_get_and_checks_csrf(reviewer, make_checkpoint, client_for):
    cp = make_checkpoint()
    assert client_for(reviewer).get(decide_url(cp)).status_code == 405
    strict = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
    strict.force_login(reviewer, backend="django.contrib.auth.backends.ModelBackend")
    assert strict.post(decide_url(cp), {"outcome": "approve"}).status_code == 403
    assert not cp.decisions.exists()


def test_it_answers_413_for_an_oversized_form(client_for, reviewer, make_checkpoint, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    cp = make_checkpoint()
    resp = client_for(reviewer).post(
        decide_url(cp), {"outcome": "modify", "action_args": "x" * 5000}
    )
    assert resp.status_code == 413
    assert not cp.decisions.exists()


def test_it_counts_quorum_votes_and_advances_stages(client_for, make_checkpoint):
    from tests.factories import PolicyFactory

    PolicyFactory(
        name="two ops then dba",
        priority=1,
        stages=[{"role": "ops", "approvals": 2}, {"role": "dba", "approvals": 1}],
    )
    cp = make_checkpoint()
    a, b = UserFactory(username="ann", roles=["ops"]), UserFactory(username="bob", roles=["ops"])
    client_for(a).post(decide_url(cp), {"outcome": "approve"})
    page = client_for(b).get(review_url(cp)).content.decode()
    assert "<strong data-approvals>1/2</strong>" in page
    client_for(b).post(decide_url(cp), {"outcome": "approve"})
    cp.refresh_from_db()
    assert cp.status == "pending" and cp.current_role == "dba" and cp.stage == 1
    # Now it left the ops queue.
    assert client_for(a).get(review_url(cp)).status_code == 404
