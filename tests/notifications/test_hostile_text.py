"""What an agent writes is shown, never interpreted, in every channel: Slack gets no mention,
link or markup it did not mean (escaped mrkdwn, literal rich text, code blocks that cannot be
closed), Teams no markdown link (TextRuns), email no markup in HTML and no broken header (a
title with a line break still delivers, as one bounded subject line). Checked on what real
receivers on 127.0.0.1 got."""

from __future__ import annotations

import json

import pytest

from approvals.models import Checkpoint
from notifications.events import Spec, announce, facts
from notifications.models import Delivery, Event
from tests.notifications.test_slack import click, post, replies, slack  # noqa: F401

pytestmark = pytest.mark.django_db

TITLE = "<!channel> Restart <@U0ADMIN> <https://evil.example|Approve here> & *now*"
SUMMARY = "[Approve here](https://evil.example) <!here> **urgent**"
ARGS = {"cmd": "```\n<!channel> <https://evil.example|click>\n```", "host": "web-1"}
MARKUP = ("<!channel>", "<!here>", "<@U0ADMIN>", "<https://evil.example")


def ask(make_checkpoint, **fields):
    return make_checkpoint(
        title=TITLE, summary=SUMMARY, risk="medium",
        action={"tool": "shell", "args": ARGS}, **fields,
    )  # fmt: skip


def slack_strings(message: dict) -> list[tuple[str, str]]:
    """(type, text) of every text in a Slack message: "top-level", "mrkdwn", "plain_text"
    or "text" (a rich-text element)."""
    found: list[tuple[str, str]] = [("top-level", message["text"])]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append((node.get("type", ""), node["text"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.get("blocks", []))
    return found


def assert_slack_shows_it_literally(message: dict) -> None:
    for kind, text in slack_strings(message):
        if kind in ("top-level", "mrkdwn"):
            # Slack parses these: nothing of the agent's may be markup there
            for markup in MARKUP:
                assert markup not in text, (kind, text)
        else:  # plain_text and rich-text elements: Slack parses nothing in them
            assert kind in ("plain_text", "text"), (kind, text)


def test_slack_and_teams_show_the_agents_words_as_text(
    inline, make_checkpoint, ops_team, http, channel
):
    channel("slack", url=http.base + "/slack")
    channel("teams", url=http.base + "/teams")
    channel("webhook", url=http.base + "/pager")
    cp = inline(ask, make_checkpoint)
    # A reminder and an escalation go through the same builders (announced as sweeps do).
    for event, extra in ((Event.REMINDER, {}), (Event.ESCALATED, {"escalation_step": 1})):
        inline(
            announce,
            Spec(cp, event, occurrence="t", role="ops", data=facts(cp, role="ops", **extra)),
        )
    slacks, teams = http.at("/slack"), http.at("/teams")
    assert len(slacks) == 3 and len(teams) == 3

    for request in slacks:
        message = request.json()
        assert_slack_shows_it_literally(message)
        assert message["text"].count("&lt;!channel&gt;") == 1  # what push notifications show
        assert "\n" not in message["text"]
        [code] = [
            b for b in message["blocks"]
            if b["type"] == "rich_text" and b["elements"][0]["type"] == "rich_text_preformatted"
        ]  # fmt: skip
        # the arguments, whole, in one preformatted element: the ``` inside closes nothing
        assert json.loads(code["elements"][0]["elements"][0]["text"]) == ARGS
        assert not any("```" in t for k, t in slack_strings(message) if k == "mrkdwn")

    for request in teams:
        card = request.json()["attachments"][0]["content"]
        text_blocks = [b for b in card["body"] if b["type"] == "TextBlock"]
        assert text_blocks == []  # TextBlocks render markdown: nothing of the agent's in one
        runs = json.dumps(card["body"])
        assert "[Approve here](https://evil.example)" in runs  # shown, as a TextRun
        for block in card["body"]:
            for inline_ in block.get("inlines", []):
                assert inline_["type"] == "TextRun"
        assert "\n" not in request.json()["summary"]

    # The paging tool gets JSON: the title as data, unchanged.
    pager = http.at("/pager")[0].json()
    assert pager["checkpoint"]["title"] == TITLE
    assert Delivery.objects.exclude(status="delivered").count() == 0


def test_the_slack_message_after_a_decision_shows_the_title_as_text(
    client,
    slack,  # noqa: F811 (the fixture of test_slack)
    make_checkpoint,
    ops_team,
    django_capture_on_commit_callbacks,
):
    from notifications import services

    services.chat_link(ops_team["rita"], team_id="T1", chat_user_id="U1", chat_name="rita")
    cp = ask(make_checkpoint)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, click(cp, base=slack.base)).status_code == 200
    assert Checkpoint.objects.get(pk=cp.pk).status == "approved"
    [reply] = replies(slack)
    assert reply["replace_original"] is True
    assert_slack_shows_it_literally(reply)
    assert "&lt;!channel&gt; Restart" in json.dumps(reply["blocks"])


def test_email_shows_markup_as_text_and_a_line_break_in_a_title_still_delivers(
    make_checkpoint, ops_team, smtp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as requested:  # not sent yet
        cp = ask(make_checkpoint)
    # A row stored before titles were checked at the edge: a CR LF and a header after it, and
    # longer than a subject may be (within the column's 300 characters).
    title = "Restart web-1\r\nBcc: everyone@example.com\r\n" + "x" * 250
    Checkpoint.objects.filter(pk=cp.pk).update(title=title)
    with django_capture_on_commit_callbacks(execute=True):
        for callback in requested:
            callback()
    mails = smtp.wait_for(2)
    assert len(mails) == 2
    assert set(Delivery.objects.values_list("status", "attempts")) == {("delivered", 1)}
    mail = mails[0]
    assert mail.message["Bcc"] is None and len(mail.recipients) == 1
    subject = mail.subject.strip()  # a long one is folded onto the next line
    assert subject.startswith("[HITL] Approval needed: Restart web-1 Bcc: everyone@example.com x")
    assert "\r" not in subject and "\n" not in subject and len(subject) <= 250
    html = mail.body("html")
    assert "<https://evil.example" not in html and 'href="https://evil.example' not in html
    assert "[Approve here](https://evil.example) &lt;!here&gt;" in html
