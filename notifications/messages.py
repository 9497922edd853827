"""What a notification says: the same facts for every channel (the email templates under
templates/notifications/, Slack's blocks, Teams' card, the webhook's JSON), built when it is
sent from the checkpoint and the facts recorded with the event."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from approvals.models import Checkpoint
from approvals.representations import review_url
from approvals.rules import may_decide_from_chat
from core.canonical import action_sha256
from core.text import one_line
from notifications.models import Delivery, Event

ARGS_PREVIEW_CHARS = 600
SUMMARY_CHARS = 200

RESOLVED_WORDS = {
    Checkpoint.Status.APPROVED: "Approved",
    Checkpoint.Status.REJECTED: "Rejected",
    Checkpoint.Status.ANSWERED: "Answered",
    Checkpoint.Status.EXPIRED: "Expired",
    Checkpoint.Status.CANCELLED: "Cancelled",
}


@dataclass
class Message:
    event: str
    headline: str
    intro: str
    checkpoint: Checkpoint
    url: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    summary: str = ""
    arguments: str = ""
    deadline: dt.datetime | None = None
    # Chat may offer approve/reject: pending, an approval or review, and not high risk.
    decidable: bool = False
    action_sha256: str = ""
    link_label: str = "Open the review page"
    link_note: str = "Opening the link decides nothing: you decide on the page."

    @property
    def subject(self) -> str:
        return f"[HITL] {self.headline}"


@dataclass
class AgentMessage:
    """An event about an agent, not a checkpoint (halted, resumed): told to its owner by
    email, written from the facts recorded with the delivery."""

    event: str
    headline: str
    intro: str
    url: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    link_label: str = "Open the agent's page"

    @property
    def subject(self) -> str:
        return f"[HITL] {self.headline}"


def humanize(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{round(seconds / 86400)} days"


def _one_line(text: str, limit: int = SUMMARY_CHARS) -> str:
    return one_line(text, limit)


def _arguments(action: dict) -> str:
    args = (action or {}).get("args")
    if not args:
        return ""
    text = json.dumps(args, indent=2, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= ARGS_PREVIEW_CHARS else text[: ARGS_PREVIEW_CHARS - 1] + "…"


def _headline(event: str, cp: Checkpoint, data: dict) -> tuple[str, str]:
    """(headline, one sentence saying why this person is told)."""
    kind = {"question": "Question", "review": "Review needed"}.get(cp.kind, "Approval needed")
    role = data.get("role") or cp.current_role
    deadline = parse_datetime(data["deadline"]) if data.get("deadline") else cp.deadline
    left = humanize((deadline - timezone.now()).total_seconds()) if deadline else ""
    agent = cp.agent.slug
    if event == Event.REQUESTED:
        return f"{kind}: {cp.title}", f"{agent} asks the {role} role. Deadline in {left}."
    if event == Event.STAGE:
        return (
            f"{kind} (stage {int(data.get('stage', 0)) + 1}): {cp.title}",
            f"The previous stage approved; the {role} role decides now. Deadline in {left}.",
        )
    if event == Event.ESCALATED:
        return (
            f"Escalated to {role}: {cp.title}",
            f"Nobody decided in time; the request is now yours ({role}), "
            f"escalation step {data.get('escalation_step', 1)}. Deadline in {left}.",
        )
    if event == Event.REMINDER:
        return f"Reminder: {cp.title}", f"Still waiting for the {role} role; deadline in {left}."
    if event == Event.SLA_REMINDER:
        sla_left = humanize(float(data.get("sla_left", 0)))
        return f"SLA due in {sla_left}: {cp.title}", f"Waiting for the {role} role."
    if event == Event.SLA_BREACHED:
        return (
            f"SLA breached: {cp.title}",
            f"Pending with the {role} role past its SLA target of {humanize(cp.sla_seconds or 0)}.",
        )
    if event == Event.RESOLVED:
        word = RESOLVED_WORDS.get(data.get("status") or cp.status, "Resolved")
        who = f" by {data['decided_by']}" if data.get("decided_by") else ""
        reason = f" — {_one_line(data['reason'])}" if data.get("reason") else ""
        return f"{word}{who}: {cp.title}", f"{agent}'s request was {word.lower()}{who}{reason}."
    if event == Event.DRILL_FINISHED:
        label = data.get("outcome_label") or data.get("outcome", "")
        votes = data.get("votes") or []
        who = ", ".join(f"{v[0]} ({v[1]})" for v in votes if v and v[0]) or "nobody"
        return (
            f"Drill {label.lower()}: {data.get('name') or cp.title}",
            f"The drill planted as “{cp.title}” ({agent}, {role} role) ended: {label.lower()}. "
            f"Decided by {who}.",
        )
    return cp.title, ""


def _drill_facts(data: dict) -> list[tuple[str, str]]:
    facts = [("Drill", str(data.get("name", "")))]
    if data.get("defect"):
        facts.append(("Planted defect", _one_line(data["defect"])))
    return facts


def build(delivery: Delivery) -> Message:
    """The message of one delivery (not a digest, not a chat reply)."""
    notice = delivery.notice
    cp = Checkpoint.with_drills.select_related("agent", "requester").get(pk=notice.checkpoint_id)
    return for_notice(cp, notice.event, notice.data or {})


def for_notice(cp: Checkpoint, event: str, data: dict[str, Any]) -> Message:
    headline, intro = _headline(event, cp, data)
    action = cp.final_action or cp.action or {}
    deadline = parse_datetime(data["deadline"]) if data.get("deadline") else cp.deadline
    facts = [("Agent", cp.agent.slug)]
    if action.get("tool"):
        facts.append(("Tool", action["tool"]))
    facts += [("Risk", cp.get_risk_display()), ("Role", data.get("role") or cp.current_role)]
    if cp.status == Checkpoint.Status.PENDING and deadline:
        facts.append(("Deadline", f"{deadline:%Y-%m-%d %H:%M} UTC"))
    if cp.requester_id:
        facts.append(("On behalf of", cp.requester.get_username()))
    pending = cp.status == Checkpoint.Status.PENDING
    url, link = review_url(cp.pk), {}
    if event == Event.DRILL_FINISHED:  # for managers: the drill's page, with its result
        url = settings.SITE_URL + reverse("admin:oversight_drill", args=[data.get("drill")])
        link = {"link_label": "Open the drill", "link_note": ""}
        facts = _drill_facts(data) + facts
    return Message(
        event=event,
        headline=headline,
        intro=intro,
        checkpoint=cp,
        url=url,
        facts=facts,
        summary=_one_line(cp.summary),
        arguments=_arguments(action),
        deadline=deadline if pending else None,
        decidable=bool(
            pending
            and event != Event.RESOLVED
            and cp.kind != Checkpoint.Kind.QUESTION
            and may_decide_from_chat(cp)
        ),
        action_sha256=action_sha256(cp.final_action or cp.action),
        **link,
    )


def _when(value: str | None) -> str:
    at = parse_datetime(value) if value else None
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else ""


def for_agent(delivery: Delivery) -> AgentMessage:
    """The message of an agent event (halted, resumed), from the delivery's facts alone."""
    data = delivery.data or {}
    name = f"{data.get('agent_name') or data.get('agent')} ({data.get('agent')})"
    url = settings.SITE_URL + reverse("admin:agents_agent_change", args=[data.get("agent_id")])
    by = data.get("by") or "an operator"
    if delivery.event == Event.AGENT_HALTED:
        runs, checkpoints = data.get("cancelled_runs", 0), data.get("cancelled_checkpoints", 0)
        return AgentMessage(
            event=delivery.event,
            headline=f"Agent halted: {name}",
            intro=(
                f"{by} halted your agent: {_one_line(data.get('reason', ''))}. Its API calls "
                f"are refused (423) until a manager resumes it; {runs} unfinished run(s) and "
                f"{checkpoints} pending request(s) were cancelled."
            ),
            url=url,
            facts=[
                ("Agent", name),
                ("Halted by", by),
                ("When", _when(data.get("halted_at"))),
                ("Reason", _one_line(data.get("reason", ""), 500)),
            ],
        )
    note = f" — {_one_line(data['note'])}" if data.get("note") else ""
    return AgentMessage(
        event=delivery.event,
        headline=f"Agent resumed: {name}",
        intro=(
            f"{by} resumed your agent{note}. It may call the API and start runs again; the "
            "runs cancelled by the halt stay cancelled."
        ),
        url=url,
        facts=[
            ("Agent", name),
            ("Resumed by", by),
            ("Halted since", _when(data.get("halted_at"))),
            ("Halt reason", _one_line(data.get("halt_reason", ""), 500)),
        ],
    )


def digest(delivery: Delivery) -> list[Message]:
    """The messages bundled into a digest delivery, oldest first."""
    entries = delivery.entries.select_related("notice").order_by("created_at", "id")
    checkpoints = Checkpoint.with_drills.select_related("agent", "requester").in_bulk(
        [e.notice.checkpoint_id for e in entries]
    )
    return [
        for_notice(checkpoints[e.notice.checkpoint_id], e.notice.event, e.notice.data or {})
        for e in entries
        if e.notice.checkpoint_id in checkpoints
    ]
