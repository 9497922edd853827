"""Browser tests: Debian's Chromium driven by Playwright, against the portal served from a
live server thread on 127.0.0.1 (ports 8210-8219)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.test.testcases import LiveServerThread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PORTS = range(8210, 8220)


@pytest.fixture(scope="session")
def portal_url():
    """One server thread for the session. It reaches the database only while a test holds
    `transactional_db`, so every request sees that test's committed rows."""
    last_error: Exception | None = None
    for port in PORTS:
        thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=port)
        thread.daemon = True
        thread.start()
        thread.is_ready.wait()
        if thread.error is None:
            break
        last_error = thread.error
    else:
        raise RuntimeError(f"no free port in {PORTS}: {last_error}")
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()


@pytest.fixture(scope="module")
def chromium(django_db_setup, django_db_blocker):
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django's ORM calls in the
    # test body are still synchronous, so tell Django's guard so, for this module only.
    old = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if old is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = old


def open_tab(chromium, **context_options):
    """A fresh browser tab (a generator: the tab, then its checks at the end). Every page it
    shows must keep to the portal's strict Content-Security-Policy: any violation Chromium
    reports (inline script or style, a foreign origin) fails the test."""
    context = chromium.new_context(**context_options)
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    violations: list[str] = []
    pg.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield pg
    context.close()
    assert violations == [], violations


@pytest.fixture
def page(chromium):
    """A desktop-sized tab (see `open_tab`)."""
    yield from open_tab(chromium, viewport={"width": 1440, "height": 960})


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    """Screenshots go to a temporary directory unless HITL_SCREENSHOT_DIR names one (the
    README's images are made with HITL_SCREENSHOT_DIR=docs/screenshots)."""
    target = os.environ.get("HITL_SCREENSHOT_DIR")
    path = Path(target) if target else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path
