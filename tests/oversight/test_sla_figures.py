"""One definition of "SLA breached", shown the same everywhere: the dashboard's tiles, its SLA
chart and table, the breaching list and the checkpoints export all count the same requests.

The scenario the newcomer saw: four requests decided within their SLA and three still pending
past it. The dashboard said "3 pending past SLA" in red next to "0 % SLA breached (0 of 4)",
the chart showed 0 while the CSV marked the three as breached."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest
from django.urls import reverse

from approvals.transitions import checkpoint_decide
from hitlportal.sweeps import run_all
from tests.factories import PolicyFactory
from tests.oversight.conftest import at, request_one

pytestmark = pytest.mark.django_db

SLA = 600  # seconds
NOW = 3600  # the manager looks an hour after the first requests


@pytest.fixture
def scenario(people, bot):
    """Through the transitions, at past moments: 4 deletes decided after 1-4 minutes (in time),
    3 asked at T0 and still pending at T0 + 1 h (past their 10-minute SLA), and one asked at
    T0 + 55 min, pending and not due yet (no SLA result either way)."""
    policy = PolicyFactory(
        name="deletes: ops within 10 minutes", match_tool="delete_*",
        stages=[{"role": "ops", "approvals": 1}], sla_seconds=SLA, timeout_seconds=86400,
    )  # fmt: skip
    for i in range(4):
        with at(i):
            cp = request_one(bot, title=f"in time {i}")
        with at(60 * (i + 1)):
            checkpoint_decide(cp.pk, people["rita"], "approve")
    for i in range(3):
        with at(10 + i):
            request_one(bot, title=f"late {i}")
    with at(NOW - 300):
        request_one(bot, title="not due yet")
    with at(NOW):
        run_all()  # what the schedule does every minute: marks breaches, refreshes the rollups
    return policy


def stat(page: str, name: str) -> tuple[str, str]:
    """A tile's figure and its label, as shown."""
    found = re.search(
        rf'data-stat="{name}"><span class="stat-n">([^<]*)</span>'
        rf'<span class="stat-label">(.*?)</span></div>',
        page,
        re.S,
    )
    assert found, name
    return found.group(1).strip(), " ".join(re.sub(r"<[^>]+>", "", found.group(2)).split())


def chart(page: str, name: str) -> dict:
    found = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1))


def test_it_counts_a_pending_checkpoint_past_its_sla_as_breached_everywhere(
    scenario, people, client_for
):
    c = client_for(people["max"])
    with at(NOW):
        page = c.get(reverse("admin:oversight_dashboard")).content.decode()
        export = re.search(r'href="([^"]*/export/checkpoints\.csv[^"]*)"', page).group(1)
        response = c.get(html.unescape(export))
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    # The export marks each request: breached, met, or no result yet (pending, not due).
    marks = {r["title"]: r["sla_breached"] for r in rows}
    row = re.search(rf"<td>{re.escape(scenario.name)}</td>(.*?)</tr>", page, re.S).group(1)
    listed = re.search(r'<table class="oversight-table" id="breaching">(.*?)</table>', page, re.S)
    figure, label = stat(page, "sla")
    seen = {
        "export: breached, with a result": (
            sum(m == "True" for m in marks.values()),
            sum(m != "" for m in marks.values()),
        ),
        "tile": (figure, label[: len("SLA breached: 3 of 7 requests")]),
        "pending past SLA tile": stat(page, "overdue"),
        "chart by policy": (
            chart(page, "chart-sla")["labels"],
            chart(page, "chart-sla")["series"][0]["data"],
        ),
        "table by policy": re.findall(r'<td class="num">([^<]*)</td>', row)[8],
        "breaching list": sorted(
            re.findall(r">(late \d|in time \d|not due yet)</a>", listed.group(1))
        ),
    }
    assert seen == {
        "export: breached, with a result": (3, 7),
        "tile": ("43%", "SLA breached: 3 of 7 requests"),
        "pending past SLA tile": ("3", "pending past SLA (breached, still undecided)"),
        "chart by policy": ([scenario.name], [42.9]),
        "table by policy": "3/7",
        "breaching list": ["late 0", "late 1", "late 2"],
    }
    assert marks == {
        **{f"in time {i}": "False" for i in range(4)},
        **{f"late {i}": "True" for i in range(3)},
        "not due yet": "",
    }


def test_a_breach_stays_a_breach_when_it_is_decided_late(scenario, people, client_for):
    """Deciding a breached request later does not undo the breach: the figures stay 3 of 7,
    and the request that was not due yet joins them as met once it is decided in time."""
    from approvals.models import Checkpoint

    with at(NOW + 60):
        for cp in Checkpoint.objects.filter(title__startswith="late ").order_by("title"):
            checkpoint_decide(cp.pk, people["rita"], "approve")
        checkpoint_decide(Checkpoint.objects.get(title="not due yet").pk, people["raj"], "approve")
    with at(NOW + 120):
        run_all()
        page = client_for(people["max"]).get(reverse("admin:oversight_dashboard")).content.decode()
    assert stat(page, "overdue")[0] == "0"
    assert stat(page, "sla")[0] == "38%"  # 3 of 8
    assert stat(page, "sla")[1].startswith("SLA breached: 3 of 8 requests")
    assert chart(page, "chart-sla")["series"][0]["data"] == [37.5]
