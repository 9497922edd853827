"""Email through Django's email framework (EMAIL_URL: any SMTP server): a plain-text and an
HTML body from templates/notifications/. The Message-ID is the delivery's id, the same on
every retry, so a receiver can drop a duplicate of a send whose success was not recorded."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.urls import reverse

from core.text import one_line
from notifications import messages
from notifications.messages import Message
from notifications.models import Delivery, RoleChannel

SUBJECT_CHARS = 250
# Refusals that leave the SMTP session usable (smtplib resets it): the connection goes on.
SESSION_INTACT = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


class Connection:
    """One SMTP connection for the emails of a batch: opened at the first, kept open for the
    others, opened again after a failure that may have broken it; closed by `close()`."""

    def __init__(self):
        self.backend = None
        self.opened = 0

    def send(self, mail: EmailMultiAlternatives) -> None:
        if self.backend is None:
            self.backend = get_connection(timeout=settings.HITL_NOTIFY_TIMEOUT)
        try:
            if self.backend.open():
                self.opened += 1
            # open: send_messages keeps it so (it closes only a connection it opened)
            self.backend.send_messages([mail])
        except SESSION_INTACT:
            raise
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            try:
                backend.close()
            except Exception:  # a connection already broken: nothing to close
                pass


def validate(channel: RoleChannel) -> dict[str, list[str]]:
    extra = set(channel.config) - {"to"}
    if extra:
        return {"config": [f"Unknown keys for email: {', '.join(sorted(extra))} (only “to”)."]}
    to = channel.config.get("to", [])
    if not isinstance(to, list) or not all(isinstance(a, str) for a in to):
        return {"config": ['"to" is a list of addresses, e.g. ["ops-list@example.com"].']}
    bad = []
    for address in to:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    return {"config": [f"Not email addresses: {', '.join(bad)}."]} if bad else {}


def settings_url() -> str:
    return settings.SITE_URL + reverse("admin:hitl_notifications")


def _send(
    delivery: Delivery, subject: str, text: str, html: str, connection: Connection | None = None
) -> tuple[int | None, str]:
    domain = settings.SITE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    mail = EmailMultiAlternatives(
        # Built from an agent's title: one line, whatever it holds (a CR or LF in a header is
        # BadHeaderError, on every retry), and bounded.
        subject=one_line(subject, SUBJECT_CHARS),
        body=text,
        to=[delivery.address],
        headers={
            "Message-ID": f"<{delivery.pk}@{domain or 'hitl'}>",
            "X-HITL-Event": delivery.event,
            "Auto-Submitted": "auto-generated",
        },
    )
    mail.attach_alternative(html, "text/html")
    if connection is None:
        mail.connection = get_connection(timeout=settings.HITL_NOTIFY_TIMEOUT)
        mail.send()
    else:
        connection.send(mail)
    return None, ""


def render(message: Message) -> tuple[str, str, str]:
    """Subject, text and HTML of a notice's email: the same for each of its recipients."""
    context = {"m": message, "settings_url": settings_url()}
    return (
        message.subject,
        render_to_string("notifications/email.txt", context),
        render_to_string("notifications/email.html", context),
    )


def send(
    delivery: Delivery,
    message: Message,
    connection: Connection | None = None,
    rendered: tuple[str, str, str] | None = None,
) -> tuple[int | None, str]:
    return _send(delivery, *(rendered or render(message)), connection)


def send_agent(delivery: Delivery, connection: Connection | None = None) -> tuple[int | None, str]:
    """An agent halted or resumed, to its owner."""
    message = messages.for_agent(delivery)
    context = {"m": message, "settings_url": settings_url()}
    return _send(
        delivery,
        message.subject,
        render_to_string("notifications/agent.txt", context),
        render_to_string("notifications/agent.html", context),
        connection,
    )


def send_digest(delivery: Delivery, connection: Connection | None = None) -> tuple[int | None, str]:
    items = messages.digest(delivery)
    headline = f"{len(items)} notification{'s' if len(items) != 1 else ''} from the last hour"
    context = {"messages": items, "headline": headline, "settings_url": settings_url()}
    return _send(
        delivery,
        f"[HITL] {headline}",
        render_to_string("notifications/digest.txt", context),
        render_to_string("notifications/digest.html", context),
        connection,
    )


def send_coalesced(
    delivery: Delivery, connection: Connection | None = None
) -> tuple[int | None, str]:
    """The summary of the requests coalesced into `delivery` (more than a person can read in
    a minute): how many, the first few titles, the link to the queue."""
    coalesced = delivery.coalesced.select_related("notice__checkpoint").order_by("created_at")
    count = coalesced.count()
    titles = [one_line(d.notice.checkpoint.title, 200) for d in coalesced[:5] if d.notice_id]
    headline = f"{count} new request{'s' if count != 1 else ''} in your queue"
    context = {
        "headline": headline,
        "count": count,
        "titles": titles,
        "more": max(count - len(titles), 0),
        "queue_url": queue_url(),
        "limit": settings.HITL_NOTIFY_COALESCE_PER_MINUTE,
        "settings_url": settings_url(),
    }
    return _send(
        delivery,
        f"[HITL] {headline}",
        render_to_string("notifications/coalesced.txt", context),
        render_to_string("notifications/coalesced.html", context),
        connection,
    )


def queue_url() -> str:
    return settings.SITE_URL + reverse("admin:approvals_checkpoint_changelist")
