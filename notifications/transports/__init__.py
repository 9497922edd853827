"""The channel registry: one module per kind of channel. Each provides

    validate(channel) -> {field: [errors]}   its config, checked when a role channel is saved
    send(delivery, message) -> (code, error) one attempt ("" error: delivered)

and `send(delivery)` here picks the module and builds the message (a digest's or a chat
reply's are the email and Slack modules' own business)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

from django.core.exceptions import ValidationError

from notifications import messages
from notifications.models import ChannelKind, Delivery, Event, RoleChannel
from notifications.transports import email, slack, teams, webhook

TRANSPORTS: dict[str, ModuleType] = {
    ChannelKind.EMAIL: email,
    ChannelKind.SLACK: slack,
    ChannelKind.TEAMS: teams,
    ChannelKind.WEBHOOK: webhook,
}


def validate_channel(channel: RoleChannel) -> None:
    """Field errors (ValidationError) for a role channel that could not deliver."""
    from django.conf import settings

    from approvals.rules import is_review_role

    errors: dict[str, list[str]] = {}
    if channel.role != settings.HITL_MANAGERS_GROUP and not is_review_role(channel.role):
        errors["role"] = [f"{channel.role!r} is not a review role or the managers group."]
    if not isinstance(channel.events, list) or not set(channel.events) <= set(_announced()):
        errors["events"] = [f"A list of events among: {', '.join(_announced())}."]
    if not isinstance(channel.config, dict):
        errors["config"] = ["An object, e.g. {}."]
    elif channel.kind in TRANSPORTS:
        for name, problems in TRANSPORTS[channel.kind].validate(channel).items():
            errors.setdefault(name, []).extend(problems)
    else:
        errors["kind"] = [f"One of: {', '.join(TRANSPORTS)}."]
    if errors:
        raise ValidationError(errors)


# Told to an agent's owner by email, never through a role's channels.
AGENT_EVENTS = (Event.AGENT_HALTED, Event.AGENT_RESUMED)


def _announced() -> list[str]:
    """The events a role channel can pick."""
    return [
        e
        for e in Event.values
        if e not in (Event.DIGEST, Event.COALESCED, Event.CHAT_REPLY, *AGENT_EVENTS)
    ]


@dataclass
class Batch:
    """What the sends of one batch share: one SMTP connection, and each notice's message,
    built once for all its recipients (it says the same to each)."""

    connection: email.Connection = field(default_factory=email.Connection)
    built: dict = field(default_factory=dict)
    rendered: dict = field(default_factory=dict)

    def message(self, delivery: Delivery) -> messages.Message:
        if delivery.notice_id not in self.built:
            self.built[delivery.notice_id] = messages.build(delivery)
        return self.built[delivery.notice_id]

    def email(self, delivery: Delivery) -> tuple[str, str, str]:
        if delivery.notice_id not in self.rendered:
            self.rendered[delivery.notice_id] = email.render(self.message(delivery))
        return self.rendered[delivery.notice_id]

    def close(self) -> None:
        self.connection.close()


def send(delivery: Delivery, batch: Batch | None = None) -> tuple[int | None, str]:
    """One attempt; within a `batch` (its connection, its messages) if given."""
    transport = TRANSPORTS[delivery.channel]
    connection = batch.connection if batch else None
    if delivery.event == Event.DIGEST:
        return email.send_digest(delivery, connection)
    if delivery.event == Event.COALESCED:
        return email.send_coalesced(delivery, connection)
    if delivery.event == Event.CHAT_REPLY:
        return slack.send_reply(delivery)
    if delivery.event in AGENT_EVENTS:
        return email.send_agent(delivery, connection)
    if batch is None:
        return transport.send(delivery, messages.build(delivery))
    if delivery.channel == ChannelKind.EMAIL:
        return email.send(delivery, batch.message(delivery), connection, batch.email(delivery))
    return transport.send(delivery, batch.message(delivery))
