"""A reviewer's day in a real browser: log in with TOTP, see only your role's queue, open a
review, read the rendered diff, approve with a keyboard shortcut, reject (reason required),
approve with edits, and watch a new item arrive without reloading."""

from __future__ import annotations

import json
import re

import pytest
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)

from agents import services
from agents.models import RunEvent
from agents.transitions import run_start
from approvals.artifacts import ArtifactInput
from approvals.models import Checkpoint
from audit.events import Actor
from tests.factories import AgentFactory, PolicyFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PATCH = """\
diff --git a/app/settings.py b/app/settings.py
--- a/app/settings.py
+++ b/app/settings.py
@@ -1,8 +1,9 @@
 import os

-DEBUG = True
-SECRET_KEY = "dev-secret"
+DEBUG = os.environ.get("DEBUG") == "1"
+SECRET_KEY = os.environ["SECRET_KEY"]
 ALLOWED_HOSTS = ["*"]
+CSRF_COOKIE_SECURE = not DEBUG
 TIME_ZONE = "UTC"
 \"\"\"Settings read from the environment
 in production.\"\"\"
diff --git a/app/health.py b/app/health.py
new file mode 100644
--- /dev/null
+++ b/app/health.py
@@ -0,0 +1,6 @@
+from django.http import JsonResponse
+
+
+def health(request):
+    # Load balancers call this; it must not touch the session.
+    return JsonResponse({"status": "ok"})
"""


def totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))


def ask(agent, title, **fields):
    run = fields.pop("run", None) or run_start(
        agent=agent, task=title, actor=Actor.for_agent(agent)
    )
    return services.ask(run, [services.Ask(title=title, **fields)], actor=Actor.for_agent(agent))[0]


@pytest.fixture
def world(db):
    PolicyFactory(
        name="SQL needs a DBA",
        priority=1,
        match_tool="sql_*",
        stages=[{"role": "dba", "approvals": 1}],
    )
    rita = UserFactory(username="rita", roles=["ops"])
    secret = generate_totp_secret()
    TOTP.activate(rita, secret)
    coder = AgentFactory(slug="code-patcher", name="Code patcher")
    janitor = AgentFactory(slug="log-janitor", name="Log janitor")
    run = run_start(
        agent=coder,
        task="Read DEBUG and SECRET_KEY from the environment",
        actor=Actor.for_agent(coder),
    )
    for kind, message in [
        ("step", "Cloned sample-repo at 3f2c1a9"),
        ("tool_call", "grep -n DEBUG app/settings.py"),
        ("observation", "DEBUG is hard-coded to True"),
        ("step", "Prepared a patch (2 files, +9 −2)"),
    ]:
        RunEvent.objects.create(run=run, kind=kind, message=message)
    patch = ask(
        coder,
        "Apply patch: read DEBUG and SECRET_KEY from the environment",
        run=run,
        risk="high",
        expires_in=5400,
        summary="Production must not run with DEBUG on or a committed secret key.",
        action={
            "tool": "apply_patch",
            "args": {"repo": "sample-repo", "branch": "main", "message": "Settings from env"},
        },
        context={
            "request": "Make the settings production-safe",
            "reasoning": [
                "DEBUG=True leaks stack traces to users.",
                "The secret key is committed to git; it must come from env.",
                "A health endpoint lets the load balancer check the app.",
            ],
        },
        artifacts=[ArtifactInput(name="settings.diff", kind="diff", content=PATCH)],
    )
    logs = ask(
        janitor,
        "Delete 3 log files older than 7 days",
        risk="medium",
        expires_in=420,
        action={
            "tool": "delete_files",
            "args": {"paths": ["/var/log/app/a.log", "/var/log/app/b.log"], "older_than_days": 7},
        },
    )
    ask(
        janitor,
        "Rotate the nginx access log",
        risk="low",
        expires_in=3000,
        action={"tool": "rotate_log", "args": {"path": "/var/log/nginx/access.log"}},
    )
    ask(
        coder,
        "Which environment should the migration run in first?",
        kind="question",
        risk="low",
        expires_in=9000,
        action={},
        options=[{"value": "staging", "label": "Staging first"}, "production"],
    )
    ask(
        janitor,
        "Purge the /tmp cache directory",
        risk="critical",
        expires_in=2400,
        action={"tool": "delete_tree", "args": {"path": "/tmp/cache"}},
    )
    dba_only = ask(
        coder,
        "UPDATE orders SET status='void'",
        risk="high",
        action={"tool": "sql_execute", "args": {"sql": "UPDATE orders ..."}},
    )
    return {"rita": rita, "secret": secret, "patch": patch, "logs": logs, "dba_only": dba_only}


def login(page, base, username, secret):
    page.goto(f"{base}/admin/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    page.fill("input[name=code]", totp_code(secret))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def test_it_logs_in_with_totp_and_shows_only_my_roles_queue(
    page, portal_url, world, screenshot_dir
):
    login(page, portal_url, "rita", world["secret"])
    assert page.locator("[data-stat=pending] .stat-n").inner_text() == "5"
    page.click("text=Open the queue")
    page.wait_for_url(re.compile(r"/admin/approvals/checkpoint/$"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 5
    body = page.locator("#result_list").inner_text()
    assert world["patch"].title in body and world["dba_only"].title not in body
    # Sorted by deadline: the log clean-up (7 min left) first, shown as due soon.
    assert world["logs"].title in rows.nth(0).inner_text()
    assert page.locator("#result_list .deadline.soon").count() == 1
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.screenshot(path=str(screenshot_dir / "queue.png"))
    # o opens the selected row.
    page.keyboard.press("o")
    page.wait_for_url(re.compile(r"/review/$"))
    # Another role's item is a 404, whatever the URL.
    resp = page.goto(f"{portal_url}/admin/approvals/checkpoint/{world['dba_only'].pk}/review/")
    assert resp.status == 404


def test_it_renders_the_diff_and_approves_with_a_shortcut(page, portal_url, world, screenshot_dir):
    cp = world["patch"]
    login(page, portal_url, "rita", world["secret"])
    page.goto(f"{portal_url}/admin/approvals/checkpoint/{cp.pk}/review/")
    unified = page.locator(".artifact .diff-view.view-unified").first
    assert unified.is_visible()
    assert page.locator(".diff-unified tr.d-add").count() == 9
    assert page.locator(".diff-unified tr.d-del").count() == 2
    assert page.locator(".diff-unified .kc", has_text="True").count() >= 1  # highlighted
    assert "Cloned sample-repo" in page.locator("#timeline").inner_text()
    page.screenshot(path=str(screenshot_dir / "review.png"), full_page=True)
    page.keyboard.press("s")  # side by side
    assert page.locator(".diff-split").first.is_visible() and not unified.is_visible()
    page.locator("#artifacts").screenshot(path=str(screenshot_dir / "review-split.png"))
    page.keyboard.press("s")
    page.keyboard.press("a")
    assert page.evaluate("document.activeElement.value") == "approve"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/review/$|/checkpoint/$"))
    assert "approve" in page.locator(".messagelist").inner_text().lower()
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.resolved_by == world["rita"]
    assert cp.decisions.get().channel == "web"


def test_it_requires_a_reason_to_reject(page, portal_url, world):
    cp = world["logs"]
    login(page, portal_url, "rita", world["secret"])
    page.goto(f"{portal_url}/admin/approvals/checkpoint/{cp.pk}/review/")
    page.click("button[value=reject]")
    assert "needs a reason" in page.locator("#comment-error").inner_text()
    cp.refresh_from_db()
    assert cp.status == "pending" and not cp.decisions.exists()
    page.keyboard.press("Escape")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("r")
    page.keyboard.type("Keep b.log: it is still being written")
    page.keyboard.press("Control+Enter")
    page.wait_for_load_state()
    page.wait_for_function(f"!location.pathname.includes('{cp.pk}')")
    cp.refresh_from_db()
    assert cp.status == "rejected"
    assert cp.resolution_reason == "Keep b.log: it is still being written"


def test_it_records_approve_with_edits(page, portal_url, world):
    cp = world["logs"]
    login(page, portal_url, "rita", world["secret"])
    page.goto(f"{portal_url}/admin/approvals/checkpoint/{cp.pk}/review/")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("e")
    args = page.locator("#id_action_args")
    assert args.is_visible()
    edited = {"paths": ["/var/log/app/a.log"], "older_than_days": 14}
    args.fill(json.dumps(edited, indent=2))
    # The live preview shows the original → edited diff before anything is submitted.
    page.locator("#edit-preview .d-del").first.wait_for()
    assert (
        "/var/log/app/b.log" in page.locator("#edit-preview .d-del").all_inner_texts()[1]
        or "b.log" in page.locator("#edit-preview").inner_text()
    )
    assert not cp.decisions.exists()
    page.click("button[value=modify]")
    page.wait_for_function(f"!location.pathname.includes('{cp.pk}')")
    cp.refresh_from_db()
    assert cp.status == "approved"
    assert cp.final_action == {"tool": "delete_files", "args": edited}
    assert cp.decisions.get().outcome == "modify"


def test_it_shows_new_items_without_a_reload(page, portal_url, world, settings):
    settings.HITL_QUEUE_POLL_SECONDS = 2
    login(page, portal_url, "rita", world["secret"])
    page.goto(f"{portal_url}/admin/approvals/checkpoint/")
    assert page.locator("#result_list tbody tr").count() == 5
    ask(
        AgentFactory(slug="log-janitor"),
        "Truncate the audit cache",
        risk="high",
        expires_in=60,
        action={"tool": "truncate", "args": {}},
    )
    page.locator("#result_list tr.is-new", has_text="Truncate the audit cache").wait_for(
        timeout=15_000
    )
    assert page.locator("#result_list tbody tr").count() == 6
    assert Checkpoint.objects.filter(status="pending", current_role="ops").count() == 6


def test_the_content_security_policy_blocks_inline_script(chromium, portal_url):
    """The policy every page fixture checks for violations is really enforced: a script
    injected inline does not run, and Chromium reports the violation."""
    context = chromium.new_context()
    pg = context.new_page()
    reports: list[str] = []
    pg.on("console", lambda msg: reports.append(msg.text))
    response = pg.goto(f"{portal_url}/accounts/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    pg.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__inline_ran = true'; document.head.appendChild(s); }"
    )
    assert pg.evaluate("() => window.__inline_ran === true") is False
    assert any("Content Security Policy" in r for r in reports), reports
    context.close()
