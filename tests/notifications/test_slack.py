"""Deciding from Slack: signed requests only, from a Slack account its owner linked while
logged in, through the same transition and rules as the review page; a rejection asks for the
reason in a modal; high and critical risk only open the review page."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from urllib.parse import urlencode

import pytest

from agents.transitions import run_start
from approvals.models import Decision
from approvals.transitions import checkpoint_decide
from audit.events import Actor
from audit.models import AuditEvent
from notifications import services
from notifications.models import ChatLink, Delivery
from tests.factories import PolicyFactory, UserFactory
from tests.receivers import HttpReceiver

pytestmark = pytest.mark.django_db
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def slack_user(name: str) -> dict:
    """Slack's `users.info` answer for a user whose email is `name`@example.com."""
    return {"ok": True, "user": {"id": "U7", "profile": {"email": f"{name}@example.com"}}}


@pytest.fixture
def slack(settings, private_urls):
    """Slack's side, on 127.0.0.1: its Web API (views.open) and the response_url."""
    server = HttpReceiver(reply={"ok": True}, replies={"/api/users.info": slack_user("raj")})
    settings.HITL_SLACK_SIGNING_SECRET = SECRET
    settings.HITL_SLACK_BOT_TOKEN = "xoxb-test-token"
    settings.HITL_SLACK_API_URL = server.base + "/api/"
    yield server
    server.stop()


@pytest.fixture
def linked(ops_team):
    services.chat_link(ops_team["rita"], team_id="T1", chat_user_id="U1", chat_name="rita.s")
    return ops_team["rita"]


def post(client, payload: dict, *, secret: str = SECRET, age: int = 0, **headers):
    body = urlencode({"payload": json.dumps(payload)})
    ts = str(int(time.time()) - age)
    mac = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return client.post(
        "/integrations/slack/actions/",
        body,
        content_type="application/x-www-form-urlencoded",
        **{"HTTP_X_SLACK_REQUEST_TIMESTAMP": ts, "HTTP_X_SLACK_SIGNATURE": f"v0={mac}", **headers},
    )


def click(cp, action_id="hitl_approve", user="U1", sha=None, base=""):
    from core.canonical import action_sha256

    return {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": user, "username": "someone", "team_id": "T1"},
        "trigger_id": "1337.42.abcd",
        "response_url": base + "/response",
        "actions": [
            {
                "action_id": action_id,
                "value": json.dumps({"c": str(cp.pk), "v": sha or action_sha256(cp.action)}),
            }
        ],
    }


def submit(cp, reason: str, user="U1", base=""):
    from core.canonical import action_sha256

    return {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": user, "team_id": "T1"},
        "view": {
            "callback_id": "hitl_reject",
            "private_metadata": json.dumps(
                {"c": str(cp.pk), "v": action_sha256(cp.action), "response_url": base + "/response"}
            ),
            "state": {
                "values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
            },
        },
    }


def nothing_recorded(cp, events_before: int):
    cp.refresh_from_db()
    assert cp.status == "pending"
    assert not Decision.objects.filter(checkpoint=cp).exists()
    assert AuditEvent.objects.count() == events_before


def replies(slack) -> list[dict]:
    return [r.json() for r in slack.at("/response")]


def test_a_signed_click_approves_as_the_linked_account(
    client, slack, linked, make_checkpoint, django_capture_on_commit_callbacks
):
    cp = make_checkpoint(risk="medium")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, click(cp, base=slack.base))
    assert response.status_code == 200
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.resolved_by == linked
    vote = Decision.objects.get(checkpoint=cp)
    assert (vote.reviewer, vote.outcome, vote.channel) == (linked, "approve", "slack")
    recorded = AuditEvent.objects.get(verb="decision.recorded", target_id=str(cp.pk))
    assert recorded.actor_label == "rita" and recorded.data["channel"] == "slack"
    [reply] = replies(slack)
    assert reply["replace_original"] is True and reply["text"] == "Approved by rita"
    assert "in Slack" in json.dumps(reply["blocks"])


@pytest.mark.parametrize(
    "case",
    ["bad signature", "stale timestamp", "unlinked", "no role", "requester", "high risk",
     "critical risk", "step-up risk", "edited since"],
)  # fmt: skip
def test_it_refuses_and_records_nothing(
    case, client, slack, linked, make_checkpoint, agent, ops_team, settings,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    dora = UserFactory(username="dora", roles=["dba"])
    services.chat_link(dora, team_id="T1", chat_user_id="U2", chat_name="dora")
    risk = {"high risk": "high", "critical risk": "critical", "step-up risk": "medium"}.get(
        case, "low"
    )
    if case == "step-up risk":
        settings.HITL_STEP_UP_RISK = "medium"  # chat cannot ask for the second factor
    run = None
    if case == "requester":
        run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent), created_by=linked)
    if case == "edited since":
        PolicyFactory(stages=[{"role": "ops", "approvals": 2}])
    cp = make_checkpoint(risk=risk, run=run)
    payload = click(cp, base=slack.base, user={"no role": "U2", "unlinked": "U9"}.get(case, "U1"))
    if case == "edited since":
        checkpoint_decide(cp.pk, ops_team["raj"], "modify", action={"args": {"paths": []}})
    before = AuditEvent.objects.count()
    kwargs = {}
    if case == "bad signature":
        kwargs["secret"] = "not-the-secret"
    if case == "stale timestamp":
        kwargs["age"] = 6 * 60
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, payload, **kwargs)
    if case == "edited since":
        cp.refresh_from_db()
        assert not Decision.objects.filter(checkpoint=cp, reviewer=linked).exists()
        assert "edited by raj" in replies(slack)[0]["text"]
        return
    nothing_recorded(cp, before)
    if case in ("bad signature", "stale timestamp"):
        assert response.status_code == 401 and replies(slack) == []
        return
    assert response.status_code == 200
    [reply] = replies(slack)
    assert reply["replace_original"] is False and reply["response_type"] == "ephemeral"
    expected = {
        "unlinked": "not linked",
        "no role": "not a reviewer for role 'ops'",
        "requester": "Four-eyes",
        "high risk": "decided on the review page, not from chat",
        "critical risk": "decided on the review page, not from chat",
        "step-up risk": "not from chat (it needs a second factor)",
    }[case]
    assert expected in reply["text"], reply["text"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"HTTP_X_SLACK_REQUEST_TIMESTAMP": "١٢٣٤٥٦٧٨٩٠"}, 400),  # digits, not ASCII ones
        ({"HTTP_X_SLACK_SIGNATURE": "v0=é"}, 401),  # hmac.compare_digest: TypeError
    ],
    ids=["arabic-indic-timestamp", "non-ascii-signature"],
)
def test_non_ascii_headers_are_refused_not_a_500(
    client, slack, linked, make_checkpoint, headers, status
):
    cp = make_checkpoint(risk="low")
    before = AuditEvent.objects.count()
    response = post(client, click(cp, base=slack.base), **headers)
    assert response.status_code == status
    nothing_recorded(cp, before)


def test_a_body_over_the_apis_limit_is_a_413_before_it_is_read(client, slack, settings):
    settings.HITL_API_MAX_BODY_BYTES = 4096
    body = urlencode({"payload": "x" * 5000})
    response = client.post(
        "/integrations/slack/actions/", body, content_type="application/x-www-form-urlencoded"
    )  # unsigned: the size is checked first
    assert response.status_code == 413 and "limit is 4096" in response.content.decode()


def test_a_vote_towards_a_quorum_keeps_the_buttons_and_a_finished_stage_moves_on(
    client, slack, linked, ops_team, make_checkpoint, django_capture_on_commit_callbacks
):
    PolicyFactory(stages=[{"role": "ops", "approvals": 2}, {"role": "dba", "approvals": 1}])
    cp = make_checkpoint(risk="low")
    services.chat_link(ops_team["raj"], team_id="T1", chat_user_id="U3", chat_name="raj")
    with django_capture_on_commit_callbacks(execute=True):
        post(client, click(cp, base=slack.base))
    cp.refresh_from_db()
    assert cp.status == "pending" and cp.current_role == "ops"
    [reply] = replies(slack)
    # only rita is told; the channel's message (and its buttons) stays for raj
    assert reply["replace_original"] is False and reply["response_type"] == "ephemeral"
    assert "needs more approvals" in reply["text"]

    with django_capture_on_commit_callbacks(execute=True):
        post(client, click(cp, user="U3", base=slack.base))
    cp.refresh_from_db()
    assert cp.status == "pending" and cp.current_role == "dba"
    assert Decision.objects.filter(checkpoint=cp, outcome="approve").count() == 2
    reply = replies(slack)[-1]
    assert reply["replace_original"] is True
    assert reply["text"] == "Approved by raj; on to the next stage (dba)"


def test_reject_asks_for_the_reason_in_a_modal_and_needs_one(
    client, slack, linked, make_checkpoint, django_capture_on_commit_callbacks
):
    cp = make_checkpoint(risk="low")
    before = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, click(cp, "hitl_reject", base=slack.base)).status_code == 200
    [opened] = slack.at("/api/views.open")
    assert opened.headers["Authorization"] == "Bearer xoxb-test-token"
    sent = opened.json()
    assert sent["trigger_id"] == "1337.42.abcd"
    view = sent["view"]
    assert view["callback_id"] == "hitl_reject" and view["blocks"][1]["block_id"] == "reason"
    nothing_recorded(cp, before)

    # an empty reason: the modal shows the error; nothing is recorded
    response = post(client, submit(cp, "   ", base=slack.base))
    assert response.json()["response_action"] == "errors"
    assert "needs a reason" in response.json()["errors"]["reason"]
    nothing_recorded(cp, before)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, submit(cp, "b.log is still written to", base=slack.base))
    assert response.json() == {"response_action": "clear"}
    cp.refresh_from_db()
    assert cp.status == "rejected" and cp.resolution_reason == "b.log is still written to"
    assert Decision.objects.get(checkpoint=cp).channel == "slack"
    assert replies(slack)[-1]["text"] == "Rejected by rita"


def test_an_unlinked_person_links_while_logged_in_then_decides(
    client, slack, ops_team, make_checkpoint, django_capture_on_commit_callbacks
):
    cp = make_checkpoint(risk="low")
    with django_capture_on_commit_callbacks(execute=True):
        post(client, click(cp, user="U7", base=slack.base))
    link = re.search(r"http://\S+/integrations/slack/link/\S+/", replies(slack)[0]["text"]).group(0)
    path = link[link.index("/integrations/") :]

    # not logged in: the login page; logged in, GET only asks
    assert client.get(path).status_code == 302
    client.force_login(ops_team["raj"])
    page = client.get(path)
    assert page.status_code == 200 and "Is this Slack account yours?" in page.content.decode()
    assert not ChatLink.objects.exists()
    # the POST links it, audited
    assert "Linked" in client.post(path).content.decode()
    chat = ChatLink.objects.get()
    assert (chat.user, chat.team_id, chat.chat_user_id) == (ops_team["raj"], "T1", "U7")
    assert AuditEvent.objects.get(verb="user.chat_linked").actor_label == "raj"
    # Slack was asked whose account it is (its email is raj's)
    [asked] = [r for r in slack.requests if r.path.startswith("/api/users.info")]
    assert "U7" in asked.path + asked.body.decode(), (asked.path, asked.body)
    # a forged or expired link is refused
    assert client.get(path[:-5] + "xxxx/").status_code == 404

    client.logout()
    with django_capture_on_commit_callbacks(execute=True):
        post(client, click(cp, user="U7", base=slack.base))
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.resolved_by == ops_team["raj"]


def test_buttons_decide_only_low_and_medium_risk(
    slack, ops_team, make_checkpoint, http, channel, inline
):
    channel("slack", url=http.url)
    for risk in ("medium", "high"):
        inline(make_checkpoint, risk=risk, title=f"{risk} item")
    # the agent lets reviewers edit or reject, not approve as is: no Approve button
    inline(make_checkpoint, risk="low", title="edit item", allowed_outcomes=["modify", "reject"])
    by_risk = {}
    for request in http.requests:
        message = request.json()
        by_risk[message["blocks"][0]["text"]["text"]] = message["blocks"][-1]["elements"]
    medium = by_risk["Approval needed: medium item"]
    assert [b["action_id"] for b in medium] == ["hitl_approve", "hitl_reject", "hitl_open"]
    value = json.loads(medium[0]["value"])
    assert set(value) == {"c", "v"}
    high = by_risk["Approval needed: high item"]
    assert [b["action_id"] for b in high] == ["hitl_open"]
    edit_only = by_risk["Approval needed: edit item"]
    assert [b["action_id"] for b in edit_only] == ["hitl_reject", "hitl_open"]
    assert Delivery.objects.filter(channel="slack", status="delivered").count() == 3


def test_a_get_is_refused(client, slack):
    assert client.get("/integrations/slack/actions/").status_code == 405


def link_path(user_id: str, name: str = "") -> str:
    from django.core import signing

    from integrations.slack.views import LINK_SALT

    token = signing.dumps({"t": "T1", "u": user_id, "n": name or user_id}, salt=LINK_SALT)
    return f"/integrations/slack/link/{token}/"


def test_a_link_to_somebody_elses_slack_account_is_refused(client, slack, ops_team, settings):
    """Mallory sends raj the link her own Slack account got: confirming it would let her
    Slack buttons decide as raj. Slack says the account's email is not raj's: refused."""
    slack.replies["/api/users.info"] = slack_user("mallory")
    client.force_login(ops_team["raj"])
    response = client.post(link_path("U7", "mallory"))
    assert response.status_code == 403
    assert "not the email of your portal account" in response.content.decode()
    assert not ChatLink.objects.exists()
    assert not AuditEvent.objects.filter(verb="user.chat_linked").exists()
    # Slack not answering is a refusal too, never a link
    slack.replies["/api/users.info"] = {"ok": False, "error": "user_not_found"}
    assert client.post(link_path("U7")).status_code == 403
    assert not ChatLink.objects.exists()
    # with the check turned off (no way to ask Slack), the person's confirmation is what counts
    settings.HITL_SLACK_LINK_MATCH_EMAIL = False
    assert client.post(link_path("U7")).status_code == 200
    assert ChatLink.objects.get().user == ops_team["raj"]


def test_a_linked_slack_account_is_never_taken_over(client, slack, linked, ops_team):
    client.force_login(ops_team["raj"])
    page = client.get(link_path("U1", "rita.s"))
    assert "linked to another portal account" in page.content.decode()
    response = client.post(link_path("U1", "rita.s"))
    assert response.status_code == 403
    chat = ChatLink.objects.get(chat_user_id="U1")
    assert chat.user == linked  # still rita's
    assert not AuditEvent.objects.filter(verb="user.chat_unlinked").exists()
