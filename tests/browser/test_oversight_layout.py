"""The oversight pages fit the window: no sideways scrolling of the page at 1366x900 (a common
laptop) or on a phone (390x844), whatever the data (four weeks of history and an agent that
sends a very long unbroken title under a policy with a long name); a wide table scrolls inside
its own box. On a phone every tab of the tab row is on screen and can be tapped."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from agents.services import Ask, ask
from agents.transitions import run_start
from approvals.models import Checkpoint
from audit.events import Actor
from oversight import analytics as metrics
from oversight.models import Drill
from tests.browser.conftest import open_tab
from tests.browser.test_oversight_browser import history, login
from tests.factories import AgentFactory, PolicyFactory
from tests.oversight.test_pages import every_oversight_url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
LONG_WORD = "/var/log/" + "x" * 250  # no break opportunity for 250 characters


def hostile_request() -> Checkpoint:
    """A request an agent may legitimately send, at the limits of what the fields hold: the
    longest slug, a title with a 250-character word, a policy with a 100-character name; asked
    an hour ago and past its SLA (so it is listed as breaching, by name)."""
    PolicyFactory(
        name="P" * 100, priority=5, match_tool="purge_*",
        stages=[{"role": "ops", "approvals": 1}], timeout_seconds=86400, sla_seconds=60,
    )  # fmt: skip
    agent = AgentFactory(slug="a" * 100, name="A" * 200)
    with time_machine.travel(timezone.now() - dt.timedelta(hours=1), tick=False):
        run = run_start(agent=agent, task="purge", actor=Actor.for_agent(agent))
        (cp,) = ask(
            run,
            [Ask(title=f"Purge {LONG_WORD}", action={"tool": "purge_" + "y" * 60, "args": {}})],
            actor=Actor.for_agent(agent),
        )
    return cp


def oversight_pages(cp: Checkpoint, drill: Drill) -> dict[str, str]:
    """Every page `oversight.urls` mounts (an added one is checked without being listed here),
    less the exports and the POST-only actions, and a few variants."""
    pages = {
        name: url
        for name, url in every_oversight_url(cp, drill).items()
        if "export" not in name and not name.endswith(("_withdraw", "_verify"))
    }
    dashboard = pages["oversight_dashboard"]
    pages["dashboard, 30 days"] = f"{dashboard}?period=30"
    pages["dashboard, 90 days"] = f"{dashboard}?period=90"
    pages["dashboard, a bad date (400)"] = f"{dashboard}?period=custom&start=x"
    pages["drill copied from a request"] = f"{pages['oversight_drill_new']}?from={cp.pk}"
    return pages


@pytest.fixture
def world(db):
    history()
    cp = hostile_request()
    metrics.refresh_rollups()
    return {"cp": cp, "drill": Drill.objects.get()}


def too_wide(page, url: str, width: int) -> int | None:
    """The page's width when it is wider than the window (every <details> opened, the charts
    drawn), else None."""
    page.goto(url)
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    if page.locator("canvas[data-chart]").count():
        page.wait_for_selector("canvas[data-chart]:not([data-drawn='1'])", state="detached")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    return scroll_width if scroll_width > width else None


@pytest.fixture
def laptop(chromium):
    yield from open_tab(chromium, viewport=LAPTOP)


def test_every_oversight_page_fits_a_laptop_window(laptop, portal_url, world):
    pages = oversight_pages(world["cp"], world["drill"])
    login(laptop, portal_url, "max")
    wide = {
        name: too_wide(laptop, portal_url + url, LAPTOP["width"]) for name, url in pages.items()
    }
    assert {name: w for name, w in wide.items() if w} == {}
    # the long word is there, wrapped or in a table's own scroll box
    laptop.goto(portal_url + pages["oversight_dashboard"])
    assert laptop.locator("#breaching").get_by_text(LONG_WORD).count() == 1


# The text of the tab a tap at (x, y) lands on ("" if none).
TAPPED = """([x, y]) => {
  const tab = document.elementFromPoint(x, y)?.closest(".oversight-tabs a");
  return tab ? tab.textContent : "";
}"""


@pytest.fixture
def phone(chromium):
    yield from open_tab(
        chromium, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )


def test_every_oversight_page_fits_a_phone_and_every_tab_is_reachable(phone, portal_url, world):
    pages = oversight_pages(world["cp"], world["drill"])
    login(phone, portal_url, "max")
    wide, hidden = {}, {}
    for name, url in pages.items():
        wide[name] = too_wide(phone, portal_url + url, PHONE["width"])
        tabs = phone.locator(".oversight-tabs a")
        assert tabs.count() == 5, name
        for i in range(tabs.count()):
            box = tabs.nth(i).bounding_box()
            # on screen, and what a tap at its centre lands on
            hit = phone.evaluate(
                TAPPED, [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
            )
            text = tabs.nth(i).inner_text()
            if not (box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] and hit == text):
                hidden.setdefault(name, []).append(text)
    assert {name: w for name, w in wide.items() if w} == {}
    assert hidden == {}
    # and the last one of the row goes where it says
    phone.goto(portal_url + pages["oversight_dashboard"])
    phone.locator(".oversight-tabs a").last.tap()
    phone.wait_for_url(re.compile(r"/admin/agents/run/"))
