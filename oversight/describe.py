"""Audit events in words, with links to what they are about.

`describe(events)` loads every checkpoint, run, agent, user, policy and drill the page's
events name in one query per kind, then turns each event into a sentence ("rita approved
“Delete old logs”", "the expiry sweep expired …") with links: checkpoints to their timeline,
runs, agents, policies to their admin pages, people to the explorer filtered by them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from agents.models import Agent, Run
from approvals.models import Checkpoint, Policy
from audit.models import AuditEvent, AuditVerb
from oversight.models import Drill

V = AuditVerb


@dataclass
class Described:
    event: AuditEvent
    text: SafeString
    actor: SafeString
    target: SafeString
    detail: str = ""  # a diff or comment shown under the sentence
    diff: str = ""


def _ids(events: list[AuditEvent], target_type: str, *data_keys: str) -> set[str]:
    found = {e.target_id for e in events if e.target_type == target_type}
    for e in events:
        for key in data_keys:
            value = (e.data or {}).get(key)
            if isinstance(value, str) and value:
                found.add(value)
    return found


def _valid_uuids(values: set[str]) -> list[str]:
    good = []
    for v in values:
        try:
            good.append(str(uuid.UUID(v)))
        except (ValueError, AttributeError):
            continue
    return good


class Lookup:
    """The rows a page of events refers to, loaded in bulk."""

    def __init__(self, events: list[AuditEvent]):
        cps = _valid_uuids(_ids(events, "approvals.checkpoint", "checkpoint"))
        runs = _valid_uuids(_ids(events, "agents.run", "run"))
        self.checkpoints = {
            str(c.pk): c
            for c in Checkpoint.with_drills.filter(pk__in=cps).only("id", "title", "drill")
        }
        self.runs = {
            str(r.pk): r
            for r in Run.objects.filter(pk__in=runs)
            .select_related("agent")
            .only("id", "task", "agent__slug")
        }
        agent_ids = {e.actor_id for e in events if e.actor_type == AuditEvent.ActorType.AGENT}
        agent_ids |= {e.target_id for e in events if e.target_type == "agents.agent"}
        self.agents = {
            str(a.pk): a for a in Agent.objects.filter(pk__in=_ints(agent_ids)).only("id", "slug")
        }
        user_ids = {e.actor_id for e in events if e.actor_type == AuditEvent.ActorType.USER}
        user_ids |= {e.target_id for e in events if e.target_type == "auth.user"}
        User = get_user_model()
        self.users = {
            str(u.pk): u for u in User.objects.filter(pk__in=_ints(user_ids)).only("id", "username")
        }
        self.policies = {
            str(p.pk): p
            for p in Policy.objects.filter(
                pk__in=_ints({e.target_id for e in events if e.target_type == "approvals.policy"})
            ).only("id", "name")
        }
        self.drills = {
            str(d.pk): d
            for d in Drill.objects.filter(
                pk__in=_ints({e.target_id for e in events if e.target_type == "approvals.drill"})
            ).only("id", "name")
        }

    def checkpoint(self, pk: str | None) -> SafeString:
        if not pk:
            return mark_safe("")
        cp = self.checkpoints.get(str(pk))
        url = reverse("admin:oversight_timeline", args=[pk])
        if cp is None:
            return format_html('<a href="{}">checkpoint {}</a>', url, str(pk)[:8])
        drill = mark_safe(' <span class="badge drill">drill</span>') if cp.drill_id else ""
        return format_html('“<a href="{}">{}</a>”{}', url, cp.title, drill)

    def run(self, pk: str | None) -> SafeString:
        if not pk:
            return mark_safe("")
        run = self.runs.get(str(pk))
        url = reverse("admin:agents_run_change", args=[pk])
        label = f"{run.agent.slug} run {str(pk)[:8]}" if run else f"run {str(pk)[:8]}"
        return format_html('<a href="{}">{}</a>', url, label)

    def agent(self, pk: str) -> SafeString:
        agent = self.agents.get(str(pk))
        if agent is None:
            return format_html("agent #{}", pk)
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:agents_agent_change", args=[pk]), agent.slug
        )

    def user(self, pk: str, label: str = "") -> SafeString:
        user = self.users.get(str(pk))
        name = user.get_username() if user else label or f"user #{pk}"
        url = reverse("admin:oversight_audit") + f"?actor={name}"
        return format_html('<a href="{}">{}</a>', url, name)

    def policy(self, pk: str) -> SafeString:
        policy = self.policies.get(str(pk))
        url = reverse("admin:approvals_policy_change", args=[pk])
        return format_html('<a href="{}">{}</a>', url, policy.name if policy else f"policy #{pk}")

    def drill(self, pk: str) -> SafeString:
        drill = self.drills.get(str(pk))
        url = reverse("admin:oversight_drill", args=[pk])
        return format_html('drill <a href="{}">{}</a>', url, drill.name if drill else f"#{pk}")

    def target(self, e: AuditEvent) -> SafeString:
        kind = e.target_type
        if kind == "approvals.checkpoint":
            return self.checkpoint(e.target_id)
        if kind == "agents.run":
            return self.run(e.target_id)
        if kind == "agents.agent":
            return self.agent(e.target_id)
        if kind == "auth.user":
            return self.user(e.target_id)
        if kind == "approvals.policy":
            return self.policy(e.target_id)
        if kind == "approvals.drill":
            return self.drill(e.target_id)
        return format_html("{} {}", kind, e.target_id)

    def actor(self, e: AuditEvent) -> SafeString:
        if e.actor_type == AuditEvent.ActorType.USER:
            return self.user(e.actor_id, e.actor_label)
        if e.actor_type == AuditEvent.ActorType.AGENT:
            return format_html("agent {}", self.agent(e.actor_id))
        return format_html('<span class="muted">the {}</span>', e.actor_label.replace("-", " "))


def _ints(values) -> list[int]:
    return [int(v) for v in values if str(v).isdigit()]


def _seconds(value: Any) -> str:
    try:
        s = float(value)
    except (TypeError, ValueError):
        return ""
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


Sentence = tuple[SafeString, str, str]  # (sentence, detail text, diff)
# (event, lookup, its data, who, what) -> the sentence, or the sentence with its detail and diff
Describer = Callable[[AuditEvent, Lookup, dict, SafeString, SafeString], "SafeString | Sentence"]

# Every verb's describer, keyed by verb: `describes(...)` registers one, and
# tests/oversight/test_describe.py checks that no verb is left without one.
DESCRIBERS: dict[str, Describer] = {}


def describes(*verbs: AuditVerb) -> Callable[[Describer], Describer]:
    def register(fn: Describer) -> Describer:
        for verb in verbs:
            if verb in DESCRIBERS:
                raise ImproperlyConfigured(f"{verb} is described twice")
            DESCRIBERS[verb] = fn
        return fn

    return register


@describes(V.CHECKPOINT_REQUESTED)
def _checkpoint_requested(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    stages = ", then ".join(
        f"{s.get('role')} ×{s.get('approvals', 1)}" for s in d.get("stages") or []
    )
    policy = d.get("policy") or "no policy (default route)"
    detail = ""
    text = format_html(
        "{} asked {} ({}, {} risk) — routed to {} by {}",
        who, what, d.get("kind", ""), d.get("risk", ""), stages, policy,
    )  # fmt: skip
    if d.get("artifacts"):
        detail = f"{len(d['artifacts'])} artifact(s): " + ", ".join(
            a.get("sha256", "")[:12] for a in d["artifacts"]
        )
    return text, detail, ""


@describes(V.CHECKPOINT_VIEWED)
def _checkpoint_viewed(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} opened {}", who, what)
    return text


@describes(V.CHECKPOINT_CLAIMED)
def _checkpoint_claimed(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} claimed {}", who, what)
    return text


@describes(V.CHECKPOINT_RELEASED)
def _checkpoint_released(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} released {} (held by {})", who, what, d.get("from") or "nobody")
    return text


@describes(V.CHECKPOINT_REASSIGNED)
def _checkpoint_reassigned(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} handed {} from {} to {}", who, what, d.get("from"), d.get("to"))
    return text


@describes(V.CHECKPOINT_STAGE_ADVANCED)
def _checkpoint_stage_advanced(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html(
        "{} moved to stage {}: {} must approve ({} needed)",
        what, (d.get("stage") or 0) + 1, d.get("role"), d.get("approvals_needed"),
    )  # fmt: skip
    return text


@describes(V.CHECKPOINT_ESCALATED)
def _checkpoint_escalated(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} escalated to {} — {}", what, d.get("role"), who)
    return text


@describes(V.CHECKPOINT_SLA_BREACHED)
def _checkpoint_sla_breached(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html(
        "{} passed its SLA of {} undecided (role {})",
        what, _seconds(d.get("sla_seconds")), d.get("role", ""),
    )  # fmt: skip
    return text


@describes(V.DECISION_RECORDED)
def _decision_recorded(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    labels = {"approve": "approved", "reject": "rejected", "modify": "approved with edits",
              "answer": "answered"}  # fmt: skip
    text = format_html(
        "{} {} {} (stage {}, as {}, via {})",
        who, labels.get(d.get("outcome"), d.get("outcome")), what,
        (d.get("stage") or 0) + 1, d.get("role"), d.get("channel"),
    )  # fmt: skip
    detail = d.get("comment") or (f"answer: {d['answer']}" if d.get("answer") else "")
    diff = d.get("action_diff") or "".join(
        a.get("diff", "") for a in d.get("edited_artifacts") or []
    )
    return text, detail, diff


@describes(V.CHECKPOINT_APPROVED, V.CHECKPOINT_REJECTED, V.CHECKPOINT_ANSWERED)
def _checkpoint_approved(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> Sentence:
    verb = e.verb
    word = verb.split(".")[1]
    text = format_html("{} {} — {}", what, word, who)
    detail = d.get("reason") or d.get("answer") or ""
    if d.get("edited"):
        detail = (detail + " (with the reviewer's edits)").strip()
    return text, detail, ""


@describes(V.CHECKPOINT_EXPIRED)
def _checkpoint_expired(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} expired", what)
    detail = d.get("reason", "")
    return text, detail, ""


@describes(V.CHECKPOINT_CANCELLED)
def _checkpoint_cancelled(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} cancelled by {}", what, who)
    detail = d.get("reason", "")
    return text, detail, ""


@describes(V.RUN_STARTED)
def _run_started(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} started {}: “{}”", who, what, (d.get("task") or "")[:120])
    return text


@describes(V.RUN_WAITING)
def _run_waiting(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} waits for a human on {}", what, look.checkpoint(d.get("checkpoint")))
    return text


@describes(V.RUN_RESUMED)
def _run_resumed(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    cps = d.get("checkpoints") or []
    text = format_html(
        "{} resumed after {}",
        what,
        format_html_join(", ", "{} ({})", ((look.checkpoint(c[0]), c[1]) for c in cps))
        or "its checkpoints were resolved",
    )
    return text


@describes(V.RUN_COMPLETED, V.RUN_FAILED, V.RUN_CANCELLED)
def _run_completed(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> Sentence:
    verb = e.verb
    text = format_html("{} {} — {}", what, verb.split(".")[1], who)
    detail = str(d.get("error") or "")
    return text, detail, ""


@describes(V.RUN_STEP_EXECUTED, V.RUN_STEP_FAILED)
def _run_step_executed(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> Sentence:
    verb = e.verb
    done = "executed" if verb == V.RUN_STEP_EXECUTED else "failed to execute"
    approved = d.get("checkpoint")
    text = format_html(
        "{} {} {}{}",
        what, done, d.get("tool"),
        format_html(" (approved in {})", look.checkpoint(approved)) if approved else "",
    )  # fmt: skip
    detail = str(d.get("error") or "")
    return text, detail, ""


@describes(V.WEBHOOK_DELIVERED, V.WEBHOOK_FAILED, V.WEBHOOK_RESENT)
def _webhook_delivered(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> Sentence:
    verb = e.verb
    outcome = verb.split(".")[1]
    text = format_html(
        "webhook for {} to {} {}{}",
        look.checkpoint(d.get("checkpoint")) or "a checkpoint", what, outcome,
        f" after {d['attempts']} attempt(s)" if d.get("attempts") else "",
    )  # fmt: skip
    detail = d.get("last_error", "")
    return text, detail, ""


@describes(V.DRILL_SCHEDULED)
def _drill_scheduled(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} scheduled {}: “{}” as {}", who, what, d.get("title"), d.get("agent"))
    detail = f"planted defect: {d.get('defect', '')}"
    return text, detail, ""


@describes(V.DRILL_RELEASED)
def _drill_released(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html(
        "{} released to {} as {}", what, d.get("role"), look.checkpoint(d.get("checkpoint"))
    )
    return text


@describes(V.DRILL_FINISHED)
def _drill_finished(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} finished: {}", what, d.get("outcome"))
    detail = "; ".join(f"{v[0]} {v[1]}" for v in d.get("votes") or [])
    return text, detail, ""


@describes(V.DRILL_WITHDRAWN)
def _drill_withdrawn(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html("{} withdrew {}", who, what)
    return text


@describes(V.CHECKPOINT_OUTCOME_RECEIVED)
def _checkpoint_outcome_received(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    how = {"api": "read it through the API", "webhook": "by webhook",
           "resume": "its run resumed"}.get(d.get("via"), d.get("via"))  # fmt: skip
    text = format_html("{} learned the outcome of {} ({})", who, what, how)
    return text


@describes(V.EXPORT_CREATED)
def _export_created(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html(
        "{} exported {} as {}", who, d.get("what", ""), (d.get("format") or "").upper()
    )
    detail = ", ".join(f"{k}={v}" for k, v in (d.get("filters") or {}).items() if v)
    return text, detail, ""


@describes(V.AUDIT_VERIFIED)
def _audit_verified(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    text = format_html(
        "{} verified the audit chain: {}",
        who,
        f"OK, {d.get('checked')} events" if d.get("ok") else f"BROKEN at #{d.get('bad_seq')}",
    )
    detail = d.get("problem", "")
    return text, detail, ""


@describes(
    V.RECEIPT_REDEEMED,
    V.NOTIFICATION_FAILED, V.NOTIFICATION_RESENT, V.NOTIFICATION_CHANNEL_CREATED,
    V.NOTIFICATION_CHANNEL_UPDATED, V.NOTIFICATION_CHANNEL_DELETED,
    V.USER_AWAY, V.USER_BACK, V.USER_CHAT_LINKED, V.USER_CHAT_UNLINKED,
    V.AGENT_CREATED, V.AGENT_UPDATED, V.AGENT_DELETED, V.AGENT_KEY_CREATED,
    V.AGENT_KEY_REVOKED, V.AGENT_WEBHOOK_SECRET_ROTATED,
    V.USER_CREATED, V.USER_UPDATED, V.USER_DELETED, V.USER_TOKEN_CREATED, V.USER_TOKEN_REVOKED,
    V.GROUP_CREATED, V.GROUP_UPDATED, V.GROUP_DELETED,
    V.POLICY_CREATED, V.POLICY_UPDATED, V.POLICY_DELETED, V.POLICY_PUBLISHED,
    V.POLICY_ROLLED_BACK, V.POLICY_REVOKED, V.POLICY_PROPOSED, V.POLICY_REPLAYED,
    V.DECISION_AUTOMATIC, V.AGENT_HALTED, V.AGENT_RESUMED,
)  # fmt: skip
def _generic(
    e: AuditEvent, look: Lookup, d: dict, who: SafeString, what: SafeString
) -> SafeString | Sentence:
    """The verb's label between who and what ("rita — policy published Ops deletes")."""
    text = format_html("{} — {} {}", who, e.get_verb_display().lower(), what)
    return text


def _sentence(e: AuditEvent, look: Lookup) -> Sentence:
    """(sentence, detail text, diff) for one event, by its verb's describer."""
    described = DESCRIBERS.get(e.verb, _generic)(
        e, look, e.data or {}, look.actor(e), look.target(e)
    )
    return described if isinstance(described, tuple) else (described, "", "")


def describe(events: list[AuditEvent]) -> list[Described]:
    look = Lookup(events)
    out = []
    for e in events:
        text, detail, diff = _sentence(e, look)
        out.append(Described(e, text, look.actor(e), look.target(e), detail, diff))
    return out
