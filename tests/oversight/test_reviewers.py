"""Reviewer analytics from recorded page views: review time, rates, load, and the
rubber-stamp flag (approving nearly everything, far faster than the role usually takes)."""

from __future__ import annotations

import datetime as dt

import pytest

from approvals.services import checkpoint_viewed
from approvals.transitions import checkpoint_decide
from oversight import analytics as metrics
from tests.factories import UserFactory
from tests.oversight.conftest import T0, at, request_one

pytestmark = pytest.mark.django_db


def review(bot, user, start: float, seconds: float, outcome: str = "approve", view: bool = True):
    with at(start):
        cp = request_one(bot, title=f"{user.username} {start}")
        if view:
            checkpoint_viewed(cp, user)
    with at(start + seconds):
        checkpoint_decide(cp.pk, user, outcome, comment="no" if outcome == "reject" else "")
    return cp


@pytest.fixture
def team(policies, bot, people):
    stamp, careful = people["rita"], people["raj"]
    quick_no = UserFactory(username="quinn", roles=["ops"])
    newbie = UserFactory(username="nina", roles=["ops"])
    t = 0
    for i in range(20):
        review(bot, stamp, t, 3)  # approves everything in 3 s
        review(bot, careful, t + 1, 60, "reject" if i % 3 == 0 else "approve")
        review(bot, quick_no, t + 2, 30, "reject" if i % 2 else "approve")
        t += 100
    for _ in range(5):
        review(bot, newbie, t, 2)  # too few decisions to judge
        t += 100
    review(bot, stamp, t, 1, view=False)  # decided without opening the page (API)
    return {"stamp": stamp, "careful": careful, "quick_no": quick_no, "newbie": newbie}


def report():
    return metrics.reviewer_stats(T0, T0 + dt.timedelta(days=1), now=T0 + dt.timedelta(hours=2))


def test_it_flags_a_rubber_stamp_and_only_them(team):
    rows = {r.username: r for r in report().rows}
    stamp = rows["rita"]
    assert stamp.decisions == 21 and stamp.approval_rate == 1.0
    assert stamp.median_review == 3.0 and stamp.untimed == 1
    assert stamp.flag.startswith("approved 100% of 21 in a median 3 s")
    assert rows["raj"].flag == "" and rows["raj"].approval_rate == pytest.approx(13 / 20)
    assert rows["quinn"].flag == ""
    assert rows["nina"].flag == ""  # approves all, fast, but only 5 decisions
    assert rows["raj"].median_review == 60.0


def test_it_compares_with_what_the_role_usually_takes(team):
    r = report()
    rows = {row.username: row for row in r.rows}
    # ops, bot · delete_files, medium: 20 x 3 s, 20 x 60 s, 20 x 30 s, 5 x 2 s
    assert r.role_medians == {"ops": 30.0}
    # Each is compared with the others: rita's 3 s with the others' median of 30 s.
    assert rows["rita"].speed_ratio == 0.1
    assert rows["raj"].speed_ratio == 20.0  # 60 s against the others' 3 s
    assert rows["rita"].rate("approve") == 1.0 and rows["raj"].rate("reject") == pytest.approx(0.35)


def test_it_counts_load(team, people, bot):
    from approvals.transitions import checkpoint_claim

    with at(7000):
        cp = request_one(bot, title="held")
        checkpoint_claim(cp.pk, people["raj"])
    rows = {r.username: r for r in report().rows}
    assert rows["raj"].holding == 1 and rows["rita"].holding == 0
    assert rows["rita"].per_day == 21.0


def test_the_flag_thresholds_are_settings(team, settings):
    settings.HITL_RUBBER_STAMP_MIN_DECISIONS = 5
    rows = {r.username: r for r in report().rows}
    assert rows["nina"].flag != ""
    settings.HITL_RUBBER_STAMP_APPROVAL_RATE = 1.01
    assert all(not r.flag for r in report().rows)


def test_the_reviewers_page_shows_the_flag(team, people, client_for):
    from django.urls import reverse

    with at(7200):
        page = (
            client_for(people["max"])
            .get(
                reverse("admin:oversight_reviewers"),
                {"period": "custom", "start": "2026-11-02", "end": "2026-11-02"},
            )
            .content.decode()
        )
    assert '<li data-reviewer="rita"><strong>rita</strong> (ops): approved 100% of 21' in page
    assert page.count("rubber stamp?") == 1
