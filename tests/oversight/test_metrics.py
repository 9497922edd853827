"""The dashboard's figures on a known dataset: percentiles, breakdowns, outcome mix, SLA,
queue depth; and the definitions the exports share."""

from __future__ import annotations

import datetime as dt

import pytest

from approvals.models import Checkpoint
from oversight import analytics as metrics
from oversight.models import OversightRollup
from tests.oversight.conftest import DAY, T0, at

pytestmark = pytest.mark.django_db


def board(**filters):
    with at(400):
        metrics.refresh_rollups()
        return metrics.dashboard(metrics.Filters(start=DAY, end=DAY, **filters))


def by_label(groups):
    return {g.label: g for g in groups}


def test_it_computes_exact_percentiles_by_checkpoint_type(known, bot):
    b = board()
    types = {g.key: g for g in b.by_type}
    deletes = types[(bot.pk, "", "delete_files")]
    assert deletes.decided == 5
    assert deletes.ttd_p == {50: 30.0, 90: 76.0, 99: 97.6}
    assert deletes.ttr_p == {50: 35.0, 90: 81.0, 99: 102.6}
    sql = types[(bot.pk, "", "sql_execute")]
    assert sql.ttd_p == {50: 125.0, 90: 185.0, 99: 198.5}
    question = types[(bot.pk, "question", "")]
    assert question.decided == 0 and question.ttd_p[50] is None
    assert question.outcomes == {"expired": 1}


@pytest.mark.postgres  # percentile_cont is PostgreSQL's
def test_it_matches_postgresql_percentile_cont(known):
    """The rollup's percentiles are those PostgreSQL computes over the raw rows."""
    from django.db import connection

    b = board()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY "
            "extract(epoch FROM resolved_at - created_at)) FROM approvals_checkpoint "
            "WHERE status IN ('approved', 'rejected', 'answered')"
        )
        (expected,) = cursor.fetchone()
    got = [b.total.ttd_p[p] for p in (50, 90, 99)]
    assert got == pytest.approx([float(x) for x in expected], abs=0.001)


def test_it_counts_outcomes_sla_and_escalations_overall(known):
    t = board().total
    assert t.requests == 10
    assert t.resolved == 9
    assert t.outcomes == {"approve": 5, "modify": 1, "reject": 1, "expired": 1, "cancelled": 1}
    assert t.decided == 7
    assert t.ttd_p[50] == 40.0  # 10, 20, 30, 40, 50, 100, 200 s
    # ops: 7 with an SLA result (5 decided + the cancelled one + the one still pending past
    # its 60 s), the 100 s one and the pending one breached; dba: the 200 s one breached its
    # 120 s. The question has no SLA target.
    assert (t.sla_total, t.sla_breached) == (9, 3)


def test_it_breaks_down_by_policy_role_and_week(known, policies):
    b = board()
    policy = {g.key: g for g in b.by_policy}
    assert (policy[policies["ops"].pk].sla_breached, policy[policies["ops"].pk].sla_total) == (2, 7)
    assert policy[policies["ops"].pk].label == "deletes: ops within a minute"
    assert (policy[policies["dba"].pk].sla_breached, policy[policies["dba"].pk].sla_total) == (1, 2)
    assert policy[None].label == "no policy (default route)"
    roles = by_label(b.by_role)
    assert roles["ops"].requests == 8 and roles["dba"].requests == 2
    assert roles["dba"].ttd_p[50] == 125.0
    (week,) = b.by_week
    assert week.key == DAY  # 2026-11-02 is a Monday
    assert week.requests == 10


def test_it_shows_pending_breaching_and_queue_depth(known):
    b = board()
    assert b.pending == 1
    assert b.overdue == 1  # the pending delete passed its 60 s SLA
    titles = {cp.title for cp in b.breaching}
    assert titles == {"delete 4", "drop table", "delete pending"}
    assert b.days == [{"day": DAY, "requests": 10, "resolved": 9, "depth": 1}]


def test_it_filters_by_agent_tool_policy_role_and_risk(known, policies, bot):
    assert board(tool="sql_execute").total.requests == 2
    assert board(policy=policies["ops"].pk).total.requests == 7
    assert board(role="dba").total.outcomes == {"modify": 1, "approve": 1}
    assert board(agent=bot.pk).total.requests == 10
    assert board(agent=bot.pk + 1).total.requests == 0
    assert board(risk="high").total.requests == 0


def test_it_carries_the_queue_over_from_before_the_period(known):
    with at(86400 + 10):
        metrics.refresh_rollups()
        b = metrics.dashboard(
            metrics.Filters(start=DAY + dt.timedelta(days=1), end=DAY + dt.timedelta(days=1))
        )
    assert b.total.requests == 0
    assert b.days[0]["depth"] == 1  # the delete still pending since the day before


def test_it_refreshes_only_the_days_that_changed(known, people):
    with at(400):
        assert metrics.refresh_rollups()["days"] == 1
    rows = OversightRollup.objects.count()
    with at(500):
        assert metrics.refresh_rollups() == {"days": 1, "rows": rows}  # inside the safety margin
    with at(3 * 86400):
        metrics.refresh_rollups()
        assert metrics.refresh_rollups() == {"days": 0, "rows": 0}  # nothing changed since
        pending = Checkpoint.objects.get(title="delete pending")
        from approvals.transitions import checkpoint_decide

        checkpoint_decide(pending.pk, people["raj"], "approve")
    with at(3 * 86400 + 1):
        assert metrics.refresh_rollups()["days"] == 2  # its request day and its decision day
        b = metrics.dashboard(metrics.Filters(start=DAY, end=DAY + dt.timedelta(days=3)))
    assert b.total.outcomes["approve"] == 6
    assert b.days[-1]["depth"] == 0


def test_the_definitions_are_one_annotation(known):
    with at(400):
        rows = {cp.title: cp for cp in metrics.with_times(Checkpoint.objects.all())}
    assert metrics.seconds(rows["delete 4"].time_to_decision) == 100.0
    assert metrics.seconds(rows["delete 4"].time_to_resume) == 105.0
    assert rows["delete 4"].sla_breached is True and rows["delete 4"].outcome == "reject"
    assert rows["void orders"].outcome == "modify" and rows["void orders"].sla_breached is False
    assert rows["which region?"].sla_breached is None  # no SLA target
    assert rows["which region?"].time_to_decision is None
    assert metrics.seconds(rows["which region?"].time_to_resolution) == 301
    assert (
        rows["delete pending"].sla_breached is True and rows["delete pending"].outcome == "pending"
    )


def test_it_leaves_drills_out(known, people, bot):
    from oversight import drills

    with at(10):
        drills.drill_schedule(
            user=people["max"], name="d", defect="deletes /etc",
            request={"agent": "bot", "kind": "approval", "title": "delete /etc",
                     "action": {"tool": "delete_files", "args": {"paths": ["/etc"]}}},
        )  # fmt: skip
    assert board().total.requests == 10
    assert T0  # the dataset's clock


def test_the_usual_periods_are_computed_by_the_sweep_not_by_the_first_viewer(known, monkeypatch):
    week = metrics.Filters(start=DAY - dt.timedelta(days=6), end=DAY)
    with at(400):
        metrics.refresh_rollups()
        expected = metrics._rolled_up(week)

        def not_on_a_page_view(filters):
            raise AssertionError("computed on a page view")

        monkeypatch.setattr(metrics, "_rolled_up", not_on_a_page_view)
        board = metrics.dashboard(week)
    assert board.total.requests == expected["total"].requests == 10
    assert board.total.ttd_p == expected["total"].ttd_p
