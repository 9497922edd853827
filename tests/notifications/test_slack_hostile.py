"""Slack's actions endpoint against what a holder of the signing secret — or anyone — can send,
through a live portal's port with a real signature: a button that does not carry the version
of the action it showed decides nothing; malformed but signed payloads, odd timestamps and
signatures and oversized bodies are 4xx (what Slack can show where it shows anything), never a
500; nothing is recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import httpx
import pytest

from approvals.models import Decision
from audit.models import AuditEvent
from core.canonical import action_sha256
from notifications import services
from notifications.models import Delivery

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture(scope="module")
def slack_portal(django_db_setup, django_db_blocker):
    from tests.api.live import LivePortal

    portal = LivePortal(HITL_SLACK_SIGNING_SECRET=SECRET).start()
    yield portal
    portal.stop()
    with django_db_blocker.unblock():
        portal.wait_for_sessions_to_close()


@pytest.fixture
def linked(ops_team):
    services.chat_link(ops_team["rita"], team_id="T1", chat_user_id="U1", chat_name="rita.s")
    return ops_team["rita"]


def signed(portal, body: bytes, *, ts: str | bytes | None = None, signature=None):
    ts = ts if ts is not None else str(int(time.time()))
    raw_ts = ts if isinstance(ts, bytes) else ts.encode()
    mac = hmac.new(SECRET.encode(), b"v0:" + raw_ts + b":" + body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{portal.url}/integrations/slack/actions/",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": raw_ts,
            "X-Slack-Signature": signature if signature is not None else f"v0={mac}",
        },
        timeout=60,
    )


def form(payload) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return urlencode({"payload": text}).encode()


USER = {"id": "U1", "username": "rita.s", "team_id": "T1"}


def click(cp, value, action_id="hitl_approve") -> dict:
    return {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": USER,
        "trigger_id": "1337.42.abcd",
        "response_url": "http://127.0.0.1:9/response",
        "actions": [{"action_id": action_id, "value": value}],
    }


def submission(cp, metadata, state=None) -> dict:
    return {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": USER,
        "view": {
            "callback_id": "hitl_reject",
            "private_metadata": metadata,
            "state": state or {"values": {"reason": {"reason": {"value": "too risky"}}}},
        },
    }


def nothing_recorded(cp, events: int) -> None:
    cp.refresh_from_db()
    assert cp.status == "pending"
    assert not Decision.objects.filter(checkpoint=cp).exists()
    assert AuditEvent.objects.count() == events


def replies() -> list[str]:
    return [d.data["text"] for d in Delivery.objects.filter(event="chat.reply")]


@pytest.mark.parametrize(
    "version",
    ["", None, "abc", "A" * 64, 7, ["x"]],
    ids=["empty", "missing", "short", "upper-hex", "number", "list"],
)
def test_a_button_without_the_actions_version_decides_nothing(
    slack_portal, linked, make_checkpoint, version
):
    cp = make_checkpoint(risk="low")
    events = AuditEvent.objects.count()
    value = {"c": str(cp.pk), **({} if version is None else {"v": version})}
    response = signed(slack_portal, form(click(cp, json.dumps(value))))
    assert response.status_code == 200, response.text
    nothing_recorded(cp, events)
    [reply] = replies()
    assert "does not say which version of the action" in reply
    # The same button with the version it showed approves.
    value["v"] = action_sha256(cp.action)
    assert signed(slack_portal, form(click(cp, json.dumps(value)))).status_code == 200
    cp.refresh_from_db()
    assert cp.status == "approved" and cp.resolved_by == linked


def test_a_reject_modal_without_the_actions_version_decides_nothing(
    slack_portal, linked, make_checkpoint
):
    cp = make_checkpoint(risk="low")
    events = AuditEvent.objects.count()
    for metadata in [{"c": str(cp.pk), "v": ""}, {"c": str(cp.pk)}]:
        response = signed(slack_portal, form(submission(cp, json.dumps(metadata))))
        assert response.status_code == 200, response.text
        assert response.json()["response_action"] == "errors"
        assert "does not say which version" in response.json()["errors"]["reason"]
    nothing_recorded(cp, events)


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[1]",
        '"block_actions"',
        "NaN",
        "[" * 50_000 + "]" * 50_000,
        {"type": "block_actions"},
        {"type": "block_actions", "user": "U1"},
        {"type": "block_actions", "user": {"id": ["U1"]}},
        {"type": "block_actions", "user": USER, "team": "T1"},
        {"type": "block_actions", "user": USER, "actions": "approve"},
        {"type": "block_actions", "user": USER, "actions": [1]},
        {"type": "block_actions", "user": USER, "actions": [{"action_id": {}}]},
        {"type": "view_submission", "user": USER, "view": "x"},
        {"type": "view_submission", "user": USER, "view": {"state": "x"}},
        {"type": ["block_actions"], "user": USER},
    ],
    ids=["text", "list", "string", "nan", "deep", "no-user", "user-string", "user-id-list",
         "team-string", "actions-string", "action-number", "action-id-object",
         "view-string", "state-string", "type-list"],
)  # fmt: skip
def test_a_malformed_signed_payload_is_a_400(slack_portal, linked, make_checkpoint, payload):
    cp = make_checkpoint(risk="low")
    events = AuditEvent.objects.count()
    response = signed(slack_portal, form(payload))
    assert response.status_code == 400, response.text[:300]
    assert "payload" in response.text
    nothing_recorded(cp, events)


@pytest.mark.parametrize(
    "payload",
    [
        lambda cp: click(cp, "{"),
        lambda cp: click(cp, "[1]"),
        lambda cp: click(cp, json.dumps({"c": 5, "v": action_sha256(cp.action)})),
        lambda cp: click(cp, json.dumps({"c": "not-a-uuid", "v": action_sha256(cp.action)})),
        lambda cp: click(cp, "[" * 1999),
    ],
    ids=["value-broken", "value-list", "id-number", "id-not-uuid", "value-deep"],
)
def test_a_signed_click_with_a_broken_button_is_told_so(
    slack_portal, linked, make_checkpoint, payload
):
    cp = make_checkpoint(risk="low")
    events = AuditEvent.objects.count()
    response = signed(slack_portal, form(payload(cp)))
    assert response.status_code == 200, response.text[:300]
    nothing_recorded(cp, events)
    [reply] = replies()
    assert reply == "That request no longer exists."


@pytest.mark.parametrize(
    "metadata, state",
    [
        ("{", None),
        ("[1]", None),
        ("[" * 2999, None),
        (json.dumps({"c": ["x"], "v": "0" * 64}), None),
        (None, {"values": {"reason": "x"}}),
        (None, {"values": {"reason": {"reason": {"value": ["too risky"]}}}}),
    ],
    ids=["meta-broken", "meta-list", "meta-deep", "meta-id-list", "values-string",
         "reason-list"],
)  # fmt: skip
def test_a_signed_modal_with_broken_contents_shows_an_error_in_the_modal(
    slack_portal, linked, make_checkpoint, metadata, state
):
    cp = make_checkpoint(risk="low")
    events = AuditEvent.objects.count()
    meta = metadata if metadata is not None else json.dumps(
        {"c": str(cp.pk), "v": action_sha256(cp.action)}
    )  # fmt: skip
    response = signed(slack_portal, form(submission(cp, meta, state)))
    assert response.status_code == 200, response.text[:300]
    assert response.json()["response_action"] == "errors"
    nothing_recorded(cp, events)


def test_odd_timestamps_signatures_and_bodies_are_4xx_never_500(
    slack_portal, linked, make_checkpoint
):
    cp = make_checkpoint(risk="low")
    events = AuditEvent.objects.count()
    body = form(click(cp, json.dumps({"c": str(cp.pk), "v": action_sha256(cp.action)})))
    for ts in ["abc", "", "9" * 5000, "-1", "1e9", "1.5", "١٢٣٤٥٦٧٨٩٠".encode()]:
        response = signed(slack_portal, body, ts=ts)
        assert response.status_code == 400, (ts, response.text[:200])
        assert "X-Slack-Request-Timestamp" in response.text
    for signature in ["", "v0=", "v0=é".encode(), "v1=" + "0" * 64, "x" * 10_000]:
        response = signed(slack_portal, body, signature=signature)
        assert response.status_code == 401, (signature, response.text[:200])
    response = signed(slack_portal, b"payload=\xff\xfe")
    assert response.status_code == 400 and "UTF-8" in response.text
    response = signed(slack_portal, b"no_payload=1")
    assert response.status_code == 400 and "payload" in response.text
    response = signed(slack_portal, b"payload=" + b"x" * (3 * 1024 * 1024))
    assert response.status_code == 413, response.text[:200]
    nothing_recorded(cp, events)
    # The same click, well signed, decides.
    assert signed(slack_portal, body).status_code == 200
    cp.refresh_from_db()
    assert cp.status == "approved"
