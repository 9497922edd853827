"""The queue and the review page on a phone (390x844): no sideways scrolling of the page, the
diff readable (unified), the decision buttons within reach."""

from __future__ import annotations

import re

import pytest

from approvals.artifacts import ArtifactInput
from tests.browser.conftest import open_tab
from tests.browser.test_portal_browser import PATCH, ask
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(chromium):
    """A phone-sized tab (see `open_tab`)."""
    yield from open_tab(
        chromium, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )


@pytest.fixture
def world(db):
    UserFactory(username="rita", roles=["ops"])
    coder = AgentFactory(slug="code-patcher", name="Code patcher")
    janitor = AgentFactory(slug="log-janitor", name="Log janitor")
    patch = ask(
        coder,
        "Apply patch: read DEBUG and SECRET_KEY from the environment",
        risk="medium",
        expires_in=5400,
        summary="Production must not run with DEBUG on or a committed secret key.",
        action={
            "tool": "apply_patch",
            "args": {"repo": "sample-repo", "branch": "main", "message": "Settings from env"},
        },
        artifacts=[ArtifactInput(name="settings.diff", kind="diff", content=PATCH)],
    )
    ask(
        janitor,
        "Delete 3 log files older than 7 days in /var/log/app/very/long/path/segments",
        risk="high",
        expires_in=420,
        action={"tool": "delete_files", "args": {"paths": ["/var/log/app/a.log"]}},
    )
    return {"patch": patch}


def login(page, base):
    page.goto(f"{base}/admin/")
    page.fill("input[name=login]", "rita")
    page.fill("input[name=password]", "pw-for-tests")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"


def test_the_queue_and_the_review_page_work_on_a_phone(phone, portal_url, world, screenshot_dir):
    login(phone, portal_url)
    no_sideways_scroll(phone)
    phone.goto(f"{portal_url}/admin/approvals/checkpoint/")
    assert phone.locator("#result_list tbody tr").count() == 2
    no_sideways_scroll(phone)
    phone.screenshot(path=str(screenshot_dir / "mobile-queue.png"))

    cp = world["patch"]
    phone.goto(f"{portal_url}/admin/approvals/checkpoint/{cp.pk}/review/")
    no_sideways_scroll(phone)
    # the unified diff, readable; the side-by-side one is not offered on a phone
    assert phone.locator(".artifact .diff-view.view-unified").first.is_visible()
    assert not phone.locator("[data-diff-mode=split]").is_visible()
    assert phone.locator(".diff-unified tr.d-add").count() == 9
    # the decision buttons are on screen without scrolling
    bar = phone.locator("#mobile-decide")
    assert bar.is_visible()
    box = bar.bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"]
    phone.screenshot(path=str(screenshot_dir / "mobile-review.png"))
    phone.locator("#artifacts").scroll_into_view_if_needed()
    no_sideways_scroll(phone)
    phone.screenshot(path=str(screenshot_dir / "mobile-diff.png"))

    # Reject goes to the reason box; Approve decides
    phone.locator("#mobile-decide [data-mobile-reject]").click()
    assert phone.evaluate("document.activeElement.id") == "id_comment"
    phone.locator("#mobile-decide button[value=approve]").click()
    phone.wait_for_url(re.compile(r"/review/$|/checkpoint/$"))
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.decisions.get().channel == "web"
