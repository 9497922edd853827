"""The role channels admin, through the public port of a live portal with a logged-in admin:
a channel's URL and signing secret are write-only (never sent back to the browser, kept when
left blank, replaced and audited without the value when typed); a URL to an internal address
is a field error; the page says how the role is told once a channel is added (email goes on)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from audit.models import AuditEvent
from notifications.models import RoleChannel
from tests.api.live import LivePortal
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
SECRET = "whsec_do-not-show-me-0123456789abcdefghij"


@pytest.fixture
def portal(django_db_blocker):
    """A portal of its own: the admin writes LogEntry rows, whose content type ids a portal
    kept across tests would hold from before the test database was flushed."""
    live = LivePortal().start()
    yield live
    live.stop()
    with django_db_blocker.unblock():
        live.wait_for_sessions_to_close()


def logged_in(portal) -> httpx.Client:
    admin = UserFactory(username="ada", roles=["ops"])
    admin.is_superuser = True
    admin.save()
    http = httpx.Client(base_url=portal.url, timeout=30)
    http.get("/accounts/login/")
    token = http.cookies["csrftoken"]
    login = http.post(
        "/accounts/login/",
        data={"login": "ada", "password": "pw-for-tests", "csrfmiddlewaretoken": token},
        headers={"Referer": portal.url + "/accounts/login/"},
    )
    assert login.status_code == 302, login.text
    return http


def form(http: httpx.Client, path: str, **fields) -> httpx.Response:
    page = http.get(path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    data = {
        "role": "ops", "kind": "slack", "name": "", "url": "", "secret": "", "config": "{}",
        "events": "[]", "active": "on", "csrfmiddlewaretoken": token, "_save": "Save", **fields,
    }  # fmt: skip
    return http.post(path, data=data, headers={"Referer": http.base_url.join(path).__str__()})


def test_a_channels_url_and_secret_are_write_only(portal):
    http = logged_in(portal)
    slack = RoleChannel.objects.create(role="ops", kind="slack", name="#ops", url=SLACK_URL)
    hook = RoleChannel.objects.create(
        role="ops", kind="webhook", url="https://pager.example.com/x", secret=SECRET
    )
    path = f"/admin/notifications/rolechannel/{slack.pk}/change/"

    for channel in (slack, hook):
        page = http.get(f"/admin/notifications/rolechannel/{channel.pk}/change/")
        assert page.status_code == 200
        assert SLACK_URL not in page.text and "XXXXXXXXXXXXXXXX" not in page.text
        assert SECRET not in page.text and "do-not-show-me" not in page.text
        assert 'name="initial-secret"' not in page.text and 'name="initial-url"' not in page.text
    assert "Stored: https://hooks.slack.com/…" in http.get(path).text

    # Blank keeps what is stored; another field's change is audited as always.
    saved = form(http, path, name="#ops-approvals")
    assert saved.status_code == 302, saved.text
    slack.refresh_from_db()
    assert (slack.name, slack.url) == ("#ops-approvals", SLACK_URL)
    [changed] = AuditEvent.objects.filter(verb="notification.channel_updated")
    assert changed.data == {"changes": {"name": ["#ops", "#ops-approvals"]}}

    # A new value replaces it: audited as replaced, never the value.
    new_url = "https://hooks.slack.com/services/T0000/B0000/NEWNEWNEWNEWNEWNEWNEWNEW"
    assert form(http, path, name="#ops-approvals", url=new_url).status_code == 302
    slack.refresh_from_db()
    assert slack.url == new_url
    replaced = AuditEvent.objects.filter(verb="notification.channel_updated").last()
    assert replaced.data["replaced"] == ["url"] and replaced.actor_label == "ada"
    trail = json.dumps(list(AuditEvent.objects.values_list("data", flat=True)))
    assert "NEWNEW" not in trail and "XXXXXXXX" not in trail and "do-not-show-me" not in trail
    assert new_url not in http.get(path).text


def test_a_new_webhook_channels_secret_is_shown_once(portal):
    http = logged_in(portal)
    added = form(
        http, "/admin/notifications/rolechannel/add/", kind="webhook",
        url="https://pager.example.com/hitl", events='["checkpoint.escalated"]',
    )  # fmt: skip
    assert added.status_code == 200, added.text
    channel = RoleChannel.objects.get()
    assert channel.secret.startswith("whsec_") and channel.secret in added.text
    assert channel.secret not in http.get(f"/admin/notifications/rolechannel/{channel.pk}/").text
    created = AuditEvent.objects.get(verb="notification.channel_created")
    assert channel.secret not in json.dumps(created.data)
    assert created.data["values"]["url"] == "https://pager.example.com/…"


def test_a_channel_to_an_internal_address_is_a_field_error(portal):
    http = logged_in(portal)
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://[::1]/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://10.0.0.7/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://localhost:8000/hook",
        "https://user:pw@hooks.slack.com/services/T/B/x",
        "file:///etc/passwd",
        "gopher://hooks.slack.com/",
    ]:
        refused = form(http, "/admin/notifications/rolechannel/add/", url=url)
        assert refused.status_code == 200, url
        assert 'class="errorlist' in refused.text and "url" in refused.text, url
        assert not RoleChannel.objects.exists(), url
    assert not AuditEvent.objects.filter(verb="notification.channel_created").exists()


def test_adding_a_pager_says_that_the_roles_email_goes_on(portal):
    http = logged_in(portal)
    added = form(
        http, "/admin/notifications/rolechannel/add/", kind="webhook",
        url="https://pager.example.com/hitl", secret="whsec_typed-by-the-admin-0123456789",
        events='["checkpoint.escalated"]',
    )  # fmt: skip
    assert added.status_code == 302, added.text
    page = http.get(added.headers["Location"]).text
    assert "Role ops is told by: email to its members (the default" in page
    assert "Webhook — checkpoint.escalated" in page
