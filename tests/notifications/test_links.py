"""Links never decide: mail scanners and chat unfurlers fetch every link they see. A GET on
every link a notification carries (email, Slack, Teams, webhook, the Slack link page)
changes nothing, logged in or not."""

from __future__ import annotations

import json
import re

import pytest

from approvals.models import Checkpoint, Decision
from audit.models import AuditEvent
from notifications.models import ChatLink
from tests.notifications.test_slack import SECRET, click, post

pytestmark = pytest.mark.django_db
URL = re.compile(r"https?://[^\s\"'<>|)]+")


def test_a_get_on_every_link_changes_nothing(
    client, inline, make_checkpoint, ops_team, smtp, http, channel, settings,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.HITL_SLACK_SIGNING_SECRET = SECRET
    channel("email")
    channel("slack", url=http.base + "/slack")
    channel("teams", url=http.base + "/teams")
    channel("webhook", url=http.base + "/pager")
    cp = inline(make_checkpoint, risk="low")
    # an unlinked Slack user's click: the reply carries the link page
    settings.HITL_SLACK_API_URL = http.base + "/api/"
    with django_capture_on_commit_callbacks(execute=True):
        post(client, click(cp, user="U5", base=http.base))

    texts = [m.body("plain") + m.body("html") for m in smtp.wait_for(2)]
    texts += [r.body.decode() for r in http.requests]
    links = {u.rstrip(".,") for text in texts for u in URL.findall(text.replace("\\/", "/"))}
    links = {u for u in links if "127.0.0.1:8000" in u or "/integrations/" in u or "/admin/" in u}
    paths = sorted({u[u.index("/", 8) :] for u in links})
    assert any(p.endswith(f"/{cp.pk}/review/") for p in paths)
    assert any(p.startswith("/integrations/slack/link/") for p in paths)
    assert "/admin/notifications/" in paths

    before = AuditEvent.objects.count()
    for user in (None, ops_team["rita"]):
        if user:
            client.force_login(user)
        else:
            client.logout()
        for path in paths:
            response = client.get(path)
            assert response.status_code in (200, 302), (path, response.status_code)
            response = client.head(path)
    cp.refresh_from_db()
    assert cp.status == Checkpoint.Status.PENDING
    assert not Decision.objects.exists() and not ChatLink.objects.exists()
    # Nothing but the record that rita opened the review page (oversight's first view).
    after = AuditEvent.objects.order_by("id")[before:]
    assert [(e.verb, e.actor_label) for e in after] == [("checkpoint.viewed", "rita")]
    # Slack's buttons decide only through a signed POST; a GET of the endpoint is refused
    assert client.get("/integrations/slack/actions/").status_code == 405
    assert json.loads(http.at("/slack")[0].body)["blocks"]
