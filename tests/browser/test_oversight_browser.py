"""A manager's oversight in a real browser: the dashboard with its charts beside their tables
(Chart.js served from static/, no CDN), the reviewers page flagging a rubber stamp, a drill,
the audit explorer in words and "verify now"."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from agents.services import Ask, ask
from agents.transitions import run_start
from api.access import note_agent_read
from approvals.services import checkpoint_viewed
from approvals.transitions import checkpoint_decide, checkpoint_expire
from audit.events import Actor
from oversight import analytics as metrics
from oversight import drills
from tests.factories import AgentFactory, PolicyFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KINDS = [
    # agent, tool, title, risk, usual seconds to decide
    ("log-janitor", "delete_files", "Delete {n} log files older than 7 days", "medium", 240),
    ("log-janitor", "rotate_log", "Rotate the nginx access log", "low", 90),
    ("code-patcher", "apply_patch", "Apply patch: {n} files", "high", 900),
    ("sql-patcher", "sql_execute", "UPDATE orders: void {n} rows", "high", 1500),
]


def history(days: int = 27, seed: int = 7) -> dict:
    """Four weeks of requests and decisions, made through the transitions at past moments."""
    rng = random.Random(seed)
    PolicyFactory(name="Database changes need a DBA", priority=10, match_tool="sql_*",
                  stages=[{"role": "dba", "approvals": 1}], timeout_seconds=7200,
                  sla_seconds=1800)  # fmt: skip
    PolicyFactory(name="Code changes need code review", priority=20, match_tool="apply_patch",
                  stages=[{"role": "code-review", "approvals": 1}], timeout_seconds=7200,
                  sla_seconds=2400)  # fmt: skip
    PolicyFactory(name="Everything else: ops", priority=1000,
                  stages=[{"role": "ops", "approvals": 1}], timeout_seconds=3600, sla_seconds=600,
                  expiry_action="escalate", escalation_role="ops-leads")  # fmt: skip
    people = {
        "ops": [UserFactory(username=name, roles=["ops"]) for name in ("rita", "raj")],
        "dba": [UserFactory(username="dora", roles=["dba"])],
        "code-review": [UserFactory(username="cody", roles=["code-review"])],
        "ops-leads": [UserFactory(username="olga", roles=["ops-leads"])],
    }  # fmt: skip
    manager = UserFactory(username="max", roles=[settings.HITL_MANAGERS_GROUP])
    agents = {slug: AgentFactory(slug=slug, name=slug) for slug in {k[0] for k in KINDS}}
    start = timezone.now().replace(hour=8, minute=0, second=0, microsecond=0) - dt.timedelta(
        days=days
    )
    later = []
    for day in range(days + 1):
        for _ in range(rng.randint(3, 8)):
            slug, tool, title, risk, usual = rng.choice(KINDS)
            at = start + dt.timedelta(days=day, minutes=rng.randint(0, 600))
            if at > timezone.now() - dt.timedelta(minutes=30):
                continue
            with time_machine.travel(at, tick=False):
                agent = agents[slug]
                run = run_start(agent=agent, task=title, actor=Actor.for_agent(agent))
                (cp,) = ask(run, [Ask(title=title.format(n=rng.randint(2, 40)), risk=risk,
                                      action={"tool": tool, "args": {"n": rng.randint(1, 9)}})],
                            actor=Actor.for_agent(agent))  # fmt: skip
            if rng.random() < 0.06:
                later.append((cp, at + dt.timedelta(hours=3)))
                continue
            who = rng.choice(people[cp.current_role])
            stamp = who.username == "raj"
            took = rng.uniform(4, 12) if stamp else rng.lognormvariate(0, 0.6) * usual
            with time_machine.travel(at + dt.timedelta(seconds=rng.uniform(20, 200)), tick=False):
                checkpoint_viewed(cp, who)
                viewed = timezone.now()
            outcome = "approve" if stamp or rng.random() < 0.8 else rng.choice(["reject", "modify"])
            extra = {"comment": "not safe"} if outcome == "reject" else {}
            if outcome == "modify":
                extra = {"action": {"tool": tool, "args": {"n": 1}}}
            when = viewed + dt.timedelta(seconds=took)
            if when >= cp.deadline:
                later.append((cp, cp.deadline + dt.timedelta(seconds=1)))
                continue
            with time_machine.travel(when, tick=False):
                checkpoint_decide(cp.pk, who, outcome, **extra)
            if rng.random() < 0.8:  # the agent picks the outcome up (long-poll, a read)
                with time_machine.travel(
                    when + dt.timedelta(seconds=rng.uniform(1, 40)), tick=False
                ):
                    cp.refresh_from_db()
                    note_agent_read(cp)
    for cp, when in later:
        if when < timezone.now():
            with time_machine.travel(when, tick=False):
                checkpoint_expire(cp.pk)
    source = agents["log-janitor"].checkpoints.filter(status="approved", tool="delete_files")[0]
    request = drills.request_from(source)
    request["action"] = {"tool": "delete_files", "args": {"paths": ["/etc/nginx"]}}
    drills.drill_schedule(user=manager, name="Deletes /etc/nginx", defect="targets /etc",
                          request=request, source=source)  # fmt: skip
    metrics.refresh_rollups()
    return {"manager": manager}


def login(page, base, username):
    page.goto(f"{base}/admin/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def test_a_manager_reads_the_dashboard(page, portal_url, screenshot_dir):
    history()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, portal_url, "max")
    page.click(".hitl-nav >> text=Oversight")
    page.wait_for_url(re.compile(r"/admin/oversight/$"))
    page.select_option("select[name=period]", "30")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"period=30"))
    assert int(page.locator("[data-stat=requests] .stat-n").inner_text()) > 80
    page.wait_for_selector("canvas[data-chart=chart-types][data-drawn='1']")
    assert page.locator("canvas[data-drawn='1']").count() == 5, errors
    types = page.locator("table[data-groups=type]").inner_text()
    assert "sql-patcher · sql_execute" in types and "log-janitor · delete_files" in types
    assert page.locator("#breaching tbody tr").count() >= 1
    page.screenshot(path=str(screenshot_dir / "oversight-dashboard.png"), full_page=False)
    page.locator("#sla").screenshot(path=str(screenshot_dir / "oversight-sla.png"))

    page.click(".oversight-tabs >> text=Reviewers")
    page.wait_for_url(re.compile(r"/reviewers/"))
    flagged = page.locator("#flagged").inner_text()
    assert "raj" in flagged and "rita" not in flagged
    page.screenshot(path=str(screenshot_dir / "oversight-reviewers.png"))

    page.click(".oversight-tabs >> text=Drills")
    assert "Deletes /etc/nginx" in page.locator("#drills").inner_text()

    page.click(".oversight-tabs >> text=Audit trail")
    page.fill("input[name=actor]", "dora")
    page.click("#filters button[type=submit]")
    first = page.locator(".audit-event").first.inner_text()
    assert "dora" in first
    page.click("#verify-form button")
    page.wait_for_url(re.compile(r"verb=audit.verified"))
    assert "OK" in page.locator("#verify-result").inner_text()
    page.goto(f"{portal_url}/admin/oversight/audit/")
    page.screenshot(path=str(screenshot_dir / "oversight-audit.png"))
    page.goto(f"{portal_url}/admin/oversight/audit/?verb=decision.recorded&actor=dora")
    page.locator(".audit-event a[href*='/oversight/checkpoints/']").first.click()
    page.wait_for_selector("#timeline")
    stages = [s.get_attribute("data-stage") for s in page.locator("#timeline .step").all()]
    assert stages[:2] == ["requested", "waiting"] and "viewed" in stages and "vote" in stages
    page.screenshot(path=str(screenshot_dir / "oversight-timeline.png"))
