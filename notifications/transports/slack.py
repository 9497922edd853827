"""Slack: a Block Kit message to the role's channel through its incoming webhook: agent, tool,
risk, a one-line summary, the deadline, the key arguments and a link to the review page.

When the portal has a Slack app (HITL_SLACK_SIGNING_SECRET), low- and medium-risk approvals
carry Approve and Reject buttons (handled by `integrations.slack`); Reject opens a modal
asking for the reason, which needs the app's bot token (HITL_SLACK_BOT_TOKEN; without it
Reject opens the review page). High and critical risk never decide from chat: their buttons
open the review page. Posted as JSON through `core.webhooks.post_json` (public addresses only,
the reply read bounded), like every channel.

Everything an agent wrote is shown as text, never as Slack markup: escaped (&, <, >) in mrkdwn,
so `<!channel>`, `<@U0ADMIN>` or `<https://evil.example|Approve here>` mention and link nobody,
and arguments sit in a code block they cannot close."""

from __future__ import annotations

import json

from django.conf import settings

from approvals.rules import allowed_outcomes
from core.net import url_problem
from core.webhooks import post_json
from notifications.messages import Message
from notifications.models import Delivery, RoleChannel

APPROVE, REJECT, OPEN = "hitl_approve", "hitl_reject", "hitl_open"


def validate(channel: RoleChannel) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if problem := url_problem(
        channel.url, "The channel's incoming webhook URL (https://hooks.slack.com/...)."
    ):
        errors["url"] = [problem]
    extra = set(channel.config) - {"interactive"}
    if extra or not isinstance(channel.config.get("interactive", True), bool):
        errors["config"] = ['Slack takes {"interactive": true|false} only.']
    return errors


def interactive(channel: RoleChannel | None) -> bool:
    return bool(
        settings.HITL_SLACK_SIGNING_SECRET
        and (channel is None or channel.config.get("interactive", True))
    )


def button_value(message: Message) -> str:
    """What a button carries back: the checkpoint and the version of the action shown."""
    return json.dumps({"c": str(message.checkpoint.pk), "v": message.action_sha256})


def _text(text: str) -> dict:
    """mrkdwn of ours (labels, dates); anything written by someone else in it is `escape`d."""
    return {"type": "mrkdwn", "text": text}


def plain(text: str) -> dict:
    """Text shown as it is: Slack parses no markup, mention or link in plain_text."""
    return {"type": "plain_text", "text": text or " ", "emoji": False}


def escape(text: str) -> str:
    """Slack's own escaping for mrkdwn and a message's top-level `text`: `<!channel>`,
    `<@U…>` and `<url|label>` become text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def literal_block(text: str, *, preformatted: bool = False, quote: bool = False) -> dict:
    """A rich_text block of one text element: literal (its markup is not parsed), and a
    preformatted one is a code block that its text cannot close."""
    kind = "rich_text_preformatted" if preformatted else "rich_text_quote" if quote else None
    element = {"type": "text", "text": text}
    inner = {"type": kind or "rich_text_section", "elements": [element]}
    return {"type": "rich_text", "elements": [inner]}


def _buttons(message: Message, channel: RoleChannel | None) -> list[dict]:
    open_page = {
        "type": "button",
        "action_id": OPEN,
        "text": {"type": "plain_text", "text": message.link_label},
        "url": message.url,
    }
    if not (message.decidable and interactive(channel)):
        return [open_page]
    value = button_value(message)
    allowed = allowed_outcomes(message.checkpoint)  # what the agent lets reviewers choose
    approve = {
        "type": "button",
        "action_id": APPROVE,
        "style": "primary",
        "text": {"type": "plain_text", "text": "Approve"},
        "value": value,
        "confirm": {
            "title": {"type": "plain_text", "text": "Approve?"},
            "text": plain(f"Approve “{message.checkpoint.title[:200]}” as shown?"),
            "confirm": {"type": "plain_text", "text": "Approve"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        },
    }
    if settings.HITL_SLACK_BOT_TOKEN:
        reject = {
            "type": "button",
            "action_id": REJECT,
            "style": "danger",
            "text": {"type": "plain_text", "text": "Reject…"},
            "value": value,
        }
    else:  # no bot token: no modal to ask for the reason, so reject on the page
        reject = {**open_page, "action_id": "hitl_reject_page", "text": {
            "type": "plain_text", "text": "Reject on the page"}}  # fmt: skip
    return [
        *([approve] if "approve" in allowed else []),
        *([reject] if "reject" in allowed else []),
        open_page,
    ]


def blocks(message: Message, channel: RoleChannel | None = None) -> list[dict]:
    cp = message.checkpoint
    fields = [plain(f"{label}\n{value}") for label, value in message.facts if label != "Deadline"]
    if message.deadline:
        ts = int(message.deadline.timestamp())
        fallback = f"{message.deadline:%Y-%m-%d %H:%M} UTC"
        fields.append(_text(f"*Deadline*\n<!date^{ts}^{{date_short_pretty}} {{time}}|{fallback}>"))
    out: list[dict] = [
        {"type": "header", "text": plain(message.headline[:150])},
        {"type": "section", "text": plain(message.intro[:3000])},
        {"type": "section", "fields": fields[:10]},
    ]
    if message.summary:
        out.append(literal_block(message.summary, quote=True))
    if message.arguments:
        out.append(literal_block(message.arguments[:2900], preformatted=True))
    if cp.status == "pending" and not message.decidable and cp.risk in ("high", "critical"):
        note = f"{cp.get_risk_display()} risk: decide on the review page."
        out.append({"type": "context", "elements": [_text(note)]})
    out.append(
        {"type": "actions", "block_id": f"hitl:{cp.pk}", "elements": _buttons(message, channel)}
    )
    return out


def payload(message: Message, channel: RoleChannel | None = None) -> dict:
    # The top-level text is what push notifications and previews show: escaped, one line.
    text = f"{' '.join(message.headline.split())} — {message.url}"
    return {"text": escape(text), "blocks": blocks(message, channel)}


def _post(url: str, body: dict) -> tuple[int | None, str]:
    raw = json.dumps(body, separators=(",", ":")).encode()
    return post_json(url, raw, headers={}, timeout=settings.HITL_NOTIFY_TIMEOUT)


def send(delivery: Delivery, message: Message) -> tuple[int | None, str]:
    return _post(delivery.route.url, payload(message, delivery.route))


def send_reply(delivery: Delivery) -> tuple[int | None, str]:
    """A reply to someone's click (`integrations.slack`): posted to the interaction's
    response_url (replace the message with its outcome, or say privately why not)."""
    data = delivery.data
    # The text says what happened in words of ours and names (a title, a username) of others:
    # never markup (the blocks, if any, are built to the same rule).
    body = {"text": escape(data["text"]), "replace_original": bool(data.get("replace_original"))}
    if data.get("blocks"):
        body["blocks"] = data["blocks"]
    if not body["replace_original"]:
        body["response_type"] = "ephemeral"
    return _post(data["response_url"], body)
