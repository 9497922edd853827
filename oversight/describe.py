"""Audit events in words, with links to what they are about.

`describe(events)` loads every checkpoint, run, agent, user, policy and drill the page's
events name in one query per kind, then turns each event into a sentence ("rita approved
“Delete old logs”", "the expiry sweep expired …") with links: checkpoints to their timeline,
runs, agents, policies to their admin pages, people to the explorer filtered by them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from agents.models import Agent, Run
from approvals.models import Checkpoint, Drill, Policy
from audit.models import AuditEvent, AuditVerb

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
            str(c.pk): c for c in Checkpoint.objects.filter(pk__in=cps).only("id", "title", "drill")
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


def _sentence(e: AuditEvent, look: Lookup) -> tuple[SafeString, str, str]:
    """(sentence, detail text, diff) for one event."""
    d = e.data or {}
    who = look.actor(e)
    what = look.target(e)
    verb = e.verb
    detail, diff = "", ""
    if verb == V.CHECKPOINT_REQUESTED:
        stages = ", then ".join(
            f"{s.get('role')} ×{s.get('approvals', 1)}" for s in d.get("stages") or []
        )
        policy = d.get("policy") or "no policy (default route)"
        text = format_html(
            "{} asked {} ({}, {} risk) — routed to {} by {}",
            who, what, d.get("kind", ""), d.get("risk", ""), stages, policy,
        )  # fmt: skip
        if d.get("artifacts"):
            detail = f"{len(d['artifacts'])} artifact(s): " + ", ".join(
                a.get("sha256", "")[:12] for a in d["artifacts"]
            )
    elif verb == V.CHECKPOINT_VIEWED:
        text = format_html("{} opened {}", who, what)
    elif verb == V.CHECKPOINT_CLAIMED:
        text = format_html("{} claimed {}", who, what)
    elif verb == V.CHECKPOINT_RELEASED:
        text = format_html("{} released {} (held by {})", who, what, d.get("from") or "nobody")
    elif verb == V.CHECKPOINT_REASSIGNED:
        text = format_html("{} handed {} from {} to {}", who, what, d.get("from"), d.get("to"))
    elif verb == V.CHECKPOINT_STAGE_ADVANCED:
        text = format_html(
            "{} moved to stage {}: {} must approve ({} needed)",
            what, (d.get("stage") or 0) + 1, d.get("role"), d.get("approvals_needed"),
        )  # fmt: skip
    elif verb == V.CHECKPOINT_ESCALATED:
        text = format_html("{} escalated to {} — {}", what, d.get("role"), who)
    elif verb == V.CHECKPOINT_SLA_BREACHED:
        text = format_html(
            "{} passed its SLA of {} undecided (role {})",
            what, _seconds(d.get("sla_seconds")), d.get("role", ""),
        )  # fmt: skip
    elif verb == V.DECISION_RECORDED:
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
    elif verb in (V.CHECKPOINT_APPROVED, V.CHECKPOINT_REJECTED, V.CHECKPOINT_ANSWERED):
        word = verb.split(".")[1]
        text = format_html("{} {} — {}", what, word, who)
        detail = d.get("reason") or d.get("answer") or ""
        if d.get("edited"):
            detail = (detail + " (with the reviewer's edits)").strip()
    elif verb == V.CHECKPOINT_EXPIRED:
        text = format_html("{} expired", what)
        detail = d.get("reason", "")
    elif verb == V.CHECKPOINT_CANCELLED:
        text = format_html("{} cancelled by {}", what, who)
        detail = d.get("reason", "")
    elif verb == V.RUN_STARTED:
        text = format_html("{} started {}: “{}”", who, what, (d.get("task") or "")[:120])
    elif verb == V.RUN_WAITING:
        text = format_html("{} waits for a human on {}", what, look.checkpoint(d.get("checkpoint")))
    elif verb == V.RUN_RESUMED:
        cps = d.get("checkpoints") or []
        text = format_html(
            "{} resumed after {}",
            what,
            format_html_join(", ", "{} ({})", ((look.checkpoint(c[0]), c[1]) for c in cps))
            or "its checkpoints were resolved",
        )
    elif verb in (V.RUN_COMPLETED, V.RUN_FAILED, V.RUN_CANCELLED):
        text = format_html("{} {} — {}", what, verb.split(".")[1], who)
        detail = str(d.get("error") or "")
    elif verb in (V.RUN_STEP_EXECUTED, V.RUN_STEP_FAILED):
        done = "executed" if verb == V.RUN_STEP_EXECUTED else "failed to execute"
        approved = d.get("checkpoint")
        text = format_html(
            "{} {} {}{}",
            what, done, d.get("tool"),
            format_html(" (approved in {})", look.checkpoint(approved)) if approved else "",
        )  # fmt: skip
        detail = str(d.get("error") or "")
    elif verb in (V.WEBHOOK_DELIVERED, V.WEBHOOK_FAILED, V.WEBHOOK_RESENT):
        outcome = verb.split(".")[1]
        text = format_html(
            "webhook for {} to {} {}{}",
            look.checkpoint(d.get("checkpoint")) or "a checkpoint", what, outcome,
            f" after {d['attempts']} attempt(s)" if d.get("attempts") else "",
        )  # fmt: skip
        detail = d.get("last_error", "")
    elif verb == V.DRILL_SCHEDULED:
        text = format_html("{} scheduled {}: “{}” as {}", who, what, d.get("title"), d.get("agent"))
        detail = f"planted defect: {d.get('defect', '')}"
    elif verb == V.DRILL_RELEASED:
        text = format_html(
            "{} released to {} as {}", what, d.get("role"), look.checkpoint(d.get("checkpoint"))
        )
    elif verb == V.DRILL_FINISHED:
        text = format_html("{} finished: {}", what, d.get("outcome"))
        detail = "; ".join(f"{v[0]} {v[1]}" for v in d.get("votes") or [])
    elif verb == V.DRILL_WITHDRAWN:
        text = format_html("{} withdrew {}", who, what)
    elif verb == V.CHECKPOINT_OUTCOME_RECEIVED:
        how = {"api": "read it through the API", "webhook": "by webhook",
               "resume": "its run resumed"}.get(d.get("via"), d.get("via"))  # fmt: skip
        text = format_html("{} learned the outcome of {} ({})", who, what, how)
    elif verb == V.EXPORT_CREATED:
        text = format_html(
            "{} exported {} as {}", who, d.get("what", ""), (d.get("format") or "").upper()
        )
        detail = ", ".join(f"{k}={v}" for k, v in (d.get("filters") or {}).items() if v)
    elif verb == V.AUDIT_VERIFIED:
        text = format_html(
            "{} verified the audit chain: {}",
            who,
            f"OK, {d.get('checked')} events" if d.get("ok") else f"BROKEN at #{d.get('bad_seq')}",
        )
        detail = d.get("problem", "")
    else:
        text = format_html("{} — {} {}", who, e.get_verb_display().lower(), what)
    return text, detail, diff


def describe(events: list[AuditEvent]) -> list[Described]:
    look = Lookup(events)
    out = []
    for e in events:
        text, detail, diff = _sentence(e, look)
        out.append(Described(e, text, look.actor(e), look.target(e), detail, diff))
    return out
