"""Exactly once across a killed worker, with a real cluster and a real SMTP server: a
worker killed in the middle of sending (the server had not said "250 accepted" yet) leaves
its deliveries owed; after the lease, the reconcile sweep sends each once, to each recipient,
with the same Message-ID."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from notifications import sweeps
from notifications.models import Delivery
from tests.cluster import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster_env(smtp) -> dict[str, str]:
    return {"EMAIL_URL": smtp.url, "HITL_NOTIFY_TIMEOUT": "3"}


def test_a_killed_worker_neither_loses_nor_doubles_a_notification(
    clusters, smtp, make_checkpoint, ops_team, settings
):
    settings.HITL_RECONCILE_GRACE = 0
    cluster = clusters()
    smtp.hold = True  # the server keeps the sender waiting for its "250 accepted"
    cp = make_checkpoint()
    wait_for(smtp.waiting.is_set, 20, "a worker to be sending")
    cluster.kill()  # the worker dies mid-send
    smtp.hold = False
    smtp.release()
    assert smtp.mails == []  # nothing was accepted: the sender went away first
    owed = Delivery.objects.filter(notice__checkpoint=cp)
    assert owed.count() == 2 and set(owed.values_list("status", flat=True)) == {"pending"}

    # the killed attempt's lease runs out; a new cluster; the sweep sends what is owed
    owed.update(locked_until=timezone.now() - dt.timedelta(seconds=1))
    clusters()
    wait_for(lambda: sweeps.run()["deliveries_enqueued"], 20, "the sweep to enqueue")
    wait_for(lambda: not owed.exclude(status="delivered").exists(), 20, "the deliveries")
    mails = smtp.wait_for(2)
    assert sorted(a for m in mails for a in m.recipients) == [
        "raj@example.com",
        "rita@example.com",
    ]
    ids = {m.message["Message-ID"] for m in mails}
    assert ids == {f"<{d.pk}@127.0.0.1>" for d in owed}
    # more sweeps, redelivered broker tasks: still one each
    sweeps.run()
    for delivery in owed:
        from notifications.tasks import deliver

        assert deliver(str(delivery.pk)).startswith("skipped")
    assert len(smtp.mails) == 2
