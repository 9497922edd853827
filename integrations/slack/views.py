"""Slack's interactivity endpoint and the account link page. Views parse and check; deciding
is `approvals.transitions.checkpoint_decide`'s, with its rules."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from api.exceptions import PayloadTooLarge
from api.parsers import check_body_size, loads_strict
from approvals import rules
from approvals.credentials import session_mfa_at
from approvals.models import Checkpoint, Decision
from approvals.representations import review_url
from approvals.transitions import checkpoint_decide
from core.exceptions import Conflict, InvalidInput, NotAllowed
from notifications import services
from notifications.models import ChannelKind, ChatLink, Event
from notifications.outbox import OUTBOX, new_delivery
from notifications.transports.slack import APPROVE, REJECT, escape, literal_block, plain

log = logging.getLogger(__name__)
LINK_SALT = "hitl.slack.link"
LINK_MAX_AGE = 15 * 60
REJECT_CALLBACK = "hitl_reject"

OUTCOME_WORDS = {"approve": "approved", "reject": "rejected"}


# --- who clicked ---------------------------------------------------------------------------


# --- what Slack sends (signed, and still checked: never a 500 for any body) ---------------------


class _User(serializers.Serializer):
    id = serializers.CharField(max_length=64)
    username = serializers.CharField(required=False, allow_blank=True, max_length=255)
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    team_id = serializers.CharField(required=False, allow_blank=True, max_length=64)


class _Team(serializers.Serializer):
    id = serializers.CharField(max_length=64)


class _Action(serializers.Serializer):
    action_id = serializers.CharField(max_length=255)
    value = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, trim_whitespace=False
    )


class _View(serializers.Serializer):
    callback_id = serializers.CharField(required=False, allow_blank=True, max_length=255)
    private_metadata = serializers.CharField(
        required=False, allow_blank=True, max_length=3000, trim_whitespace=False
    )
    state = serializers.DictField(required=False)


class InteractionIn(serializers.Serializer):
    """The fields of an interaction payload that the portal reads (Slack sends more)."""

    type = serializers.CharField(max_length=64)
    user = _User()
    team = _Team(required=False, allow_null=True)
    actions = _Action(many=True, required=False, max_length=25)
    view = _View(required=False)
    response_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    trigger_id = serializers.CharField(required=False, allow_blank=True, max_length=255)


class Malformed(Exception):
    """A request that is not what Slack sends: 400 with the reason."""


def _text(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def _refusal(request: HttpRequest, secret: str) -> HttpResponse | None:
    """The answer to a request that is not a signed Slack request of a sane size, else None."""
    try:
        check_body_size(_content_length(request))
        check_body_size(len(request.body), declared=False)
    except PayloadTooLarge as exc:
        return _text(413, str(exc.detail))
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return _text(400, "X-Slack-Request-Timestamp is not a Unix time in seconds")
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return _text(400, "the body is not UTF-8")
    # (hmac.compare_digest refuses non-ASCII text with TypeError)
    if not signature.isascii() or not SignatureVerifier(secret).is_valid(
        body, timestamp, signature
    ):
        return _text(401, "invalid or stale Slack signature")
    return None


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _payload(request: HttpRequest) -> dict:
    """The interaction, its shape checked (strict JSON, bounded depth); raises Malformed."""
    raw = request.POST.get("payload")
    if raw is None:
        raise Malformed("not a Slack interaction payload (no payload field)")
    try:
        data = loads_strict(raw.encode(), settings.HITL_API_MAX_JSON_DEPTH)
    except ParseError as exc:
        raise Malformed(f"the payload is not JSON: {exc.detail}") from None
    shape = InteractionIn(data=data)
    if not shape.is_valid():
        raise Malformed(f"not a Slack interaction payload: {json.dumps(shape.errors)}")
    return {**shape.validated_data, "view": shape.validated_data.get("view") or {}}


def _dig(data: Any, *keys: str) -> str:
    """The text at `keys` in nested objects, else ""."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, str) else ""


def _slack_user(payload: dict) -> tuple[str, str, str]:
    user = payload.get("user") or {}
    team = (payload.get("team") or {}).get("id") or user.get("team_id") or ""
    name = user.get("username") or user.get("name") or user.get("id", "")
    return team, user.get("id", ""), name


def _linked(payload: dict) -> ChatLink | None:
    team, user_id, _name = _slack_user(payload)
    return (
        ChatLink.objects.select_related("user")
        .filter(provider="slack", team_id=team, chat_user_id=user_id, user__is_active=True)
        .first()
    )


def _credential(link: ChatLink) -> rules.Credential:
    return rules.Credential(
        rules.CHAT,
        mfa_at=link.mfa_verified_at,
        scopes=frozenset({rules.READ, rules.DECIDE}),
    )


def link_url(payload: dict) -> str:
    """A link, for this Slack user only, to the page where they confirm (logged in) which
    portal account is theirs."""
    team, user_id, name = _slack_user(payload)
    token = signing.dumps({"t": team, "u": user_id, "n": name}, salt=LINK_SALT)
    return settings.SITE_URL + reverse("slack-link", args=[token])


# --- replies (through the notification outbox: retried, visible in the admin) ---------------


def _reply(payload: dict, text: str, *, replace: bool = False, blocks: list | None = None):
    response_url = payload.get("response_url") or _dig(_metadata(payload), "response_url")
    if not response_url:
        return
    data: dict[str, Any] = {"response_url": response_url, "text": text, "replace_original": replace}
    if blocks:
        data["blocks"] = blocks
    with transaction.atomic():
        OUTBOX.owe_many(
            [
                new_delivery(
                    None,
                    ChannelKind.SLACK,
                    f"reply:{uuid.uuid4()}",
                    event=Event.CHAT_REPLY,
                    data=data,
                )
            ],
            reason="slack reply",
        )


def _outcome_blocks(cp: Checkpoint, who: str, outcome: str, comment: str = "") -> list[dict]:
    """What the message becomes once decided: names and the title as text (`escape`), the
    reason literal."""
    word = OUTCOME_WORDS.get(outcome, outcome).capitalize()
    text = f"*{word}* by {escape(who)} in Slack: {escape(' '.join(cp.title.split()))}"
    out = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if comment:
        out.append(literal_block(comment[:500], quote=True))
    out.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"<{review_url(cp.pk)}|Open the review page>"}],
        }
    )
    return out


def _metadata(payload: dict) -> dict:
    """What the reject modal carries for us (our JSON, back through Slack): {} if it is not."""
    try:
        meta = json.loads((payload.get("view") or {}).get("private_metadata") or "{}")
    except (ValueError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}


# --- the endpoint ------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def actions(request: HttpRequest) -> HttpResponse:
    """Slack's Request URL for interactivity. Answers within Slack's 3 s: the decision is one
    transaction; what the clicker is told is sent after, from the outbox."""
    secret = settings.HITL_SLACK_SIGNING_SECRET
    if not secret:
        raise Http404("Slack interactivity is not configured (HITL_SLACK_SIGNING_SECRET)")
    refused = _refusal(request, secret)
    if refused is not None:
        return refused
    try:
        payload = _payload(request)
    except Malformed as exc:
        return _text(400, str(exc))
    kind = payload["type"]
    if kind == "block_actions":
        return _block_actions(payload)
    if kind == "view_submission" and (payload.get("view") or {}).get("callback_id") == (
        REJECT_CALLBACK
    ):
        return _reject_submitted(payload)
    return HttpResponse(status=200)


FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
NO_VERSION = (
    "the button does not say which version of the action it showed, so it cannot approve "
    "or reject it"
)


def _button(payload: dict) -> tuple[str, str, str]:
    """(action_id, checkpoint id, action fingerprint shown) of the clicked button; the
    fingerprint is "" unless it is one (a button without it decides nothing)."""
    actions = payload.get("actions") or [{}]
    action_id = actions[0].get("action_id", "")
    try:
        value = json.loads(actions[0].get("value") or "{}")
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        return action_id, "", ""
    return action_id, _dig(value, "c"), _fingerprint(_dig(value, "v"))


def _fingerprint(text: str) -> str:
    return text if FINGERPRINT.match(text) else ""


def _checkpoint(pk: str) -> Checkpoint | None:
    try:
        return Checkpoint.with_drills.select_related("agent").get(pk=pk)
    except (Checkpoint.DoesNotExist, ValueError, ValidationError):
        return None


def _block_actions(payload: dict) -> HttpResponse:
    action_id, cp_id, seen = _button(payload)
    if action_id not in (APPROVE, REJECT):
        return HttpResponse(status=200)  # "Open the review page" is a link: nothing to do
    link = _linked(payload)
    if link is None:
        _reply(
            payload,
            "Your Slack account is not linked to a portal account yet. Link it (you confirm "
            f"while logged in to the portal), then press the button again: {link_url(payload)}",
        )
        return HttpResponse(status=200)
    cp = _checkpoint(cp_id)
    if cp is None:
        _reply(payload, "That request no longer exists.")
        return HttpResponse(status=200)
    if not seen:
        # Without it the vote would skip the check that the action was not edited since.
        _reply(payload, f"Not recorded: {NO_VERSION}. Review it on the page: {review_url(cp.pk)}")
        return HttpResponse(status=200)
    if action_id == REJECT:
        return _open_reject_modal(payload, link, cp, seen)
    try:
        result = checkpoint_decide(
            cp.pk,
            link.user,
            Decision.Outcome.APPROVE,
            channel=Decision.Channel.SLACK,
            seen_action_sha256=seen,
            credential=_credential(link),
        )
    except (Conflict, NotAllowed, InvalidInput) as exc:
        _reply(payload, f"Not recorded: {exc}. Review it on the page: {review_url(cp.pk)}")
        return HttpResponse(status=200)
    name = link.user.get_username()
    if result.resolved:
        _reply(
            payload,
            f"Approved by {name}",
            replace=True,
            blocks=_outcome_blocks(cp, name, "approve"),
        )
    elif result.stage_advanced:
        # this stage is done: its buttons go; the next stage's role is told on its own
        nxt = result.checkpoint.current_role
        _reply(
            payload,
            f"Approved by {name}; on to the next stage ({nxt})",
            replace=True,
            blocks=_outcome_blocks(cp, name, "approve", f"On to the next stage: role {nxt}."),
        )
    else:
        # a vote towards the stage's quorum: the message keeps its buttons for the others
        _reply(payload, f"Your approval is recorded; “{cp.title}” needs more approvals.")
    return HttpResponse(status=200)


def _open_reject_modal(payload: dict, link: ChatLink, cp: Checkpoint, seen: str) -> HttpResponse:
    """Reject asks for the reason first (a modal); the same rules are checked now, so nobody
    types a reason for a vote that would be refused, and again when it is submitted."""
    try:
        if cp.status != Checkpoint.Status.PENDING:
            raise NotAllowed(f"it is already {cp.status}")
        rules.check_may_review(link.user, cp)
        rules.check_credential(_credential(link), cp)
    except NotAllowed as exc:
        _reply(payload, f"Not recorded: {exc}. Review it on the page: {review_url(cp.pk)}")
        return HttpResponse(status=200)
    view = {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(
            {"c": str(cp.pk), "v": seen, "response_url": payload.get("response_url", "")}
        ),
        "blocks": [
            {"type": "section", "text": plain(cp.title[:200])},
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason (the agent gets it)"},
                "element": {"type": "plain_text_input", "action_id": "reason", "multiline": True},
            },
        ],
    }
    client = WebClient(
        token=settings.HITL_SLACK_BOT_TOKEN,
        base_url=settings.HITL_SLACK_API_URL,
        timeout=2,
    )
    try:
        client.views_open(trigger_id=payload.get("trigger_id", ""), view=view)
    except (SlackApiError, OSError) as exc:
        log.warning("Slack views.open failed: %s", exc)
        _reply(
            payload, f"Could not ask for the reason here; reject on the page: {review_url(cp.pk)}"
        )
    return HttpResponse(status=200)


def _modal_error(message: str) -> JsonResponse:
    return JsonResponse({"response_action": "errors", "errors": {"reason": message[:150]}})


def _reject_submitted(payload: dict) -> HttpResponse:
    meta = _metadata(payload)
    reason = _dig(payload["view"].get("state"), "values", "reason", "reason", "value")
    link = _linked(payload)
    if link is None:
        return _modal_error("Your Slack account is not linked to a portal account.")
    cp = _checkpoint(_dig(meta, "c"))
    if cp is None:
        return _modal_error("That request no longer exists.")
    seen = _fingerprint(_dig(meta, "v"))
    if not seen:
        return _modal_error(f"Not recorded: {NO_VERSION}; reject it on the review page.")
    try:
        checkpoint_decide(
            cp.pk,
            link.user,
            Decision.Outcome.REJECT,
            comment=reason.strip(),
            channel=Decision.Channel.SLACK,
            seen_action_sha256=seen,
            credential=_credential(link),
        )
    except (Conflict, NotAllowed, InvalidInput) as exc:
        return _modal_error(str(exc))
    name = link.user.get_username()
    _reply(
        payload,
        f"Rejected by {name}",
        replace=True,
        blocks=_outcome_blocks(cp, name, "reject", reason.strip()),
    )
    return JsonResponse({"response_action": "clear"})


# --- linking a Slack account to a portal account ------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what would be linked; only the logged-in person's POST links it."""
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE)
    except signing.BadSignature:
        raise Http404("This link is invalid or expired: press the Slack button again") from None
    user = request.user
    if not (user.is_active and user.is_staff):
        raise PermissionDenied("Only portal users link chat accounts")
    existing = ChatLink.objects.filter(
        provider="slack", team_id=data["t"], chat_user_id=data["u"]
    ).first()
    done = existing is not None and existing.user_id == user.pk
    linked_elsewhere = existing is not None and not done
    refused = ""
    if request.method == "POST" and not done:
        if linked_elsewhere:
            # never taken over from another account: its owner (or an admin) unlinks it first
            refused = (
                "This Slack account is linked to another portal account. Its owner unlinks it "
                "on their notifications page (or an administrator does), then try again."
            )
        else:
            refused = _not_the_same_person(data["u"], user)
        if not refused:
            services.chat_link(
                user,
                team_id=data["t"],
                chat_user_id=data["u"],
                chat_name=data.get("n", ""),
                mfa_at=session_mfa_at(request),
            )
            done = True
    context = {
        **admin.site.each_context(request),
        "title": "Link your Slack account",
        "slack": data,
        "done": done,
        "linked_elsewhere": linked_elsewhere,
        "refused": refused,
    }
    status = 403 if refused else 200
    return TemplateResponse(request, "integrations/slack_link.html", context, status=status)


def _not_the_same_person(slack_user_id: str, user) -> str:
    """Why this Slack account may not be linked to `user`, or "" when it may. Someone could
    send you the link of *their* Slack account: with a bot token, Slack tells the account's
    email (`users.info`, scope `users:read.email`), and it must be your portal email
    (HITL_SLACK_LINK_MATCH_EMAIL)."""
    if not (settings.HITL_SLACK_LINK_MATCH_EMAIL and settings.HITL_SLACK_BOT_TOKEN):
        return ""
    client = WebClient(
        token=settings.HITL_SLACK_BOT_TOKEN, base_url=settings.HITL_SLACK_API_URL, timeout=3
    )
    try:
        info = client.users_info(user=slack_user_id)
    except (SlackApiError, OSError) as exc:
        log.warning("Slack users.info failed: %s", exc)
        return "Slack could not confirm whose account this is; try again in a moment."
    email = str(((info.get("user") or {}).get("profile") or {}).get("email") or "")
    if not email:
        return (
            "Slack did not share this account's email (the Slack app needs the "
            "users:read.email scope); ask your administrator."
        )
    if not user.email or email.casefold() != user.email.casefold():
        return (
            "This Slack account's email is not the email of your portal account: it is "
            "somebody else's, or your portal email needs updating by an administrator."
        )
    return ""
