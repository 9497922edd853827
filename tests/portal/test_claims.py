"""Claim / release / reassign from the review page: a lease so two reviewers don't work the
same item; managers can hand an item to someone else."""

from __future__ import annotations

from django.urls import reverse

from approvals.transitions import checkpoint_claim
from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.portal.helpers import review_url


def url(name, cp):
    return reverse(f"admin:approvals_checkpoint_{name}", args=[cp.pk])


def test_it_claims_and_releases(client_for, reviewer, make_checkpoint, settings):
    cp = make_checkpoint()
    c = client_for(reviewer)
    assert "data-shortcut-claim>Claim" in c.get(review_url(cp)).content.decode()
    resp = c.post(url("claim", cp))
    assert resp.status_code == 302 and resp["Location"] == review_url(cp)
    cp.refresh_from_db()
    assert cp.claimed_by == reviewer
    lease = cp.claim_expires_at - AuditEvent.objects.get(verb="checkpoint.claimed").at
    assert abs(lease.total_seconds() - settings.HITL_CLAIM_LEASE) < 5
    assert "Release" in c.get(review_url(cp)).content.decode()
    assert c.post(url("release", cp)).status_code == 302
    cp.refresh_from_db()
    assert cp.claimed_by is None
    assert AuditEvent.objects.filter(target_id=str(cp.pk), verb="checkpoint.released").exists()


def test_it_names_the_holder_when_a_claim_is_taken(
    client_for, reviewer, reviewer2, make_checkpoint
):
    cp = make_checkpoint()
    checkpoint_claim(cp.pk, reviewer2)
    resp = client_for(reviewer).post(url("claim", cp))
    assert resp.status_code == 409 and "claimed by raj" in resp.content.decode()
    assert client_for(reviewer).post(url("release", cp)).status_code == 403
    cp.refresh_from_db()
    assert cp.claimed_by == reviewer2


def test_it_lets_managers_reassign(client_for, manager, reviewer, reviewer2, make_checkpoint):
    cp = make_checkpoint()
    checkpoint_claim(cp.pk, reviewer)
    c = client_for(manager)
    page = c.get(review_url(cp)).content.decode()
    assert "Reassign to" in page and "raj" in page
    resp = c.post(url("reassign", cp), {"reviewer": reviewer2.pk})
    assert resp.status_code == 302
    cp.refresh_from_db()
    assert cp.claimed_by == reviewer2
    event = AuditEvent.objects.get(target_id=str(cp.pk), verb="checkpoint.reassigned")
    assert event.data == {"from": "rita", "to": "raj"} and event.actor_label == "max"
    # A user without the role is not a valid target.
    outsider = UserFactory(username="dave", roles=["dba"])
    c.post(url("reassign", cp), {"reviewer": outsider.pk})
    cp.refresh_from_db()
    assert cp.claimed_by == reviewer2
    # Empty choice releases.
    c.post(url("reassign", cp), {"reviewer": ""})
    cp.refresh_from_db()
    assert cp.claimed_by is None


def test_it_refuses_reassign_to_reviewers(client_for, reviewer, reviewer2, make_checkpoint):
    cp = make_checkpoint()
    resp = client_for(reviewer).post(url("reassign", cp), {"reviewer": reviewer2.pk})
    assert resp.status_code == 403
    cp.refresh_from_db()
    assert cp.claimed_by is None
