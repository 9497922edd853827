"""Oversight tests: a controllable clock (time-machine) and a known dataset built through the
real transitions, at known moments."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings

from agents.services import Ask, ask
from agents.transitions import run_start
from approvals.transitions import checkpoint_cancel, checkpoint_decide, checkpoint_expire
from audit.events import Actor
from tests.factories import AgentFactory, PolicyFactory, UserFactory
from tests.portal.conftest import client_for  # noqa: F401  (a logged-in browser-like client)

T0 = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)  # a Monday
DAY = T0.date()


def at(seconds: float):
    """Stand still at T0 + seconds."""
    return time_machine.travel(T0 + dt.timedelta(seconds=seconds), tick=False)


@pytest.fixture
def people(db):
    return {
        "rita": UserFactory(username="rita", roles=["ops"]),
        "raj": UserFactory(username="raj", roles=["ops"]),
        "dora": UserFactory(username="dora", roles=["dba"]),
        "max": UserFactory(username="max", roles=[settings.HITL_MANAGERS_GROUP]),
    }


@pytest.fixture
def policies(db):
    return {
        "ops": PolicyFactory(
            name="deletes: ops within a minute",
            priority=10,
            match_tool="delete_*",
            stages=[{"role": "ops", "approvals": 1}],
            sla_seconds=60,
        ),
        "dba": PolicyFactory(
            name="sql: a DBA within two minutes",
            priority=20,
            match_tool="sql_*",
            stages=[{"role": "dba", "approvals": 1}],
            sla_seconds=120,
        ),
    }


@pytest.fixture
def bot(db):
    return AgentFactory(slug="bot", name="Bot")


def request_one(agent, *, title="Delete old logs", tool="delete_files", **fields):
    run = run_start(agent=agent, task=title, actor=Actor.for_agent(agent))
    action = {"tool": tool, "args": {"n": title}} if tool else {}
    return ask(run, [Ask(title=title, action=action, **fields)], actor=Actor.for_agent(agent))[0]


@pytest.fixture
def known(people, policies, bot):
    """On 2026-11-02 from 10:00 UTC (T0):
    - 5 deletes (ops, SLA 60 s): rita approves after 10, 20, 30, 40 s, rejects after 100 s;
    - 2 SQL updates (dba, SLA 120 s): dora approves with edits after 50 s, approves after 200 s;
    - a question (no policy, no SLA) that expires; a delete the agent cancels after 5 s;
    - a delete still pending (asked at T0, SLA due at T0 + 60 s).
    The agent reads each decision 5 s after it is made (time to resume = decision + 5 s)."""
    from api.access import note_agent_read

    made = {"decided": [], "other": []}

    def decide(cp, who, outcome, after, **kw):
        with at(after):
            checkpoint_decide(cp.pk, people[who], outcome, **kw)
        with at(after + 5):
            cp.refresh_from_db()
            note_agent_read(cp)
        made["decided"].append(cp)

    for i, (after, outcome) in enumerate([(10, "approve"), (20, "approve"), (30, "approve"),
                                          (40, "approve"), (100, "reject")]):  # fmt: skip
        with at(i * 0.001):
            cp = request_one(bot, title=f"delete {i}")
        decide(cp, "rita", outcome, after + i * 0.001, comment="no" if outcome == "reject" else "")
    with at(0):
        sql1 = request_one(bot, title="void orders", tool="sql_execute")
        sql2 = request_one(bot, title="drop table", tool="sql_execute")
    decide(sql1, "dora", "modify", 50, action={"tool": "sql_execute", "args": {"n": "edited"}})
    decide(sql2, "dora", "approve", 200)
    with at(0):
        question = request_one(bot, title="which region?", tool="", kind="question", expires_in=300)
        cancelled = request_one(bot, title="delete cancelled")
        made["pending"] = request_one(bot, title="delete pending", expires_in=7 * 86400)
    with at(301):
        checkpoint_expire(question.pk)
    with at(5):
        checkpoint_cancel(cancelled.pk, Actor.for_agent(bot), reason="not needed")
    made["other"] = [question, cancelled]
    return made
