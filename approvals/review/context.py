"""Everything the review page shows, gathered in one place (the template only lays it out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from approvals import rules
from approvals.artifacts import artifact_text
from approvals.credentials import credential_for
from approvals.edits import unified
from approvals.forms import DecisionForm, ReassignForm
from approvals.models import Artifact, Checkpoint
from approvals.policies import pages as policy_pages
from approvals.rendering import artifacts as render_artifacts
from approvals.rendering import diff as diffs
from approvals.rendering.text import json_value_html
from approvals.review import queries
from approvals.sources import source_for
from core.roles import is_manager

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


def _root(a: Artifact, by_id: dict) -> Artifact:
    seen = set()
    while a.edited_from_id and a.edited_from_id in by_id and a.pk not in seen:
        seen.add(a.pk)
        a = by_id[a.edited_from_id]
    return a


def current_artifacts(
    cp: Checkpoint, all_artifacts: list[Artifact] | None = None
) -> list[Artifact]:
    """The latest version of each of the checkpoint's artifacts (a reviewer's edit replaces
    the agent's draft for the next stage)."""
    rows = (
        all_artifacts
        if all_artifacts is not None
        else list(cp.artifacts.order_by("created_at", "name"))
    )
    by_id = {a.pk: a for a in rows}
    latest: dict[Any, Artifact] = {}
    for a in rows:
        latest[_root(a, by_id).pk] = a
    return list(latest.values())


def diff_sections(patch: str) -> list[dict]:
    files = diffs.parse(patch)
    diffs.highlight(files)
    return [
        {"file": f, "unified": diffs.unified_html(f), "split": diffs.split_html(f)} for f in files
    ]


def edit_preview(cp: Checkpoint, data: dict) -> dict:
    by_id = {str(a.pk): a for a in cp.artifacts.all()}
    artifacts = []
    for edit in data.get("artifact_edits") or []:
        original = by_id[str(edit.original_id)]
        patch = unified(
            artifact_text(original), edit.content, f"a/{original.name}", f"b/{original.name}"
        )
        artifacts.append({"name": original.name, "sections": diff_sections(patch)})
    return {
        "action": diff_sections(data["action_diff"]) if data.get("action_diff") else [],
        "artifacts": artifacts,
        "fingerprint": data.get("edit_fingerprint", ""),
    }


def _context_sections(context: dict) -> dict:
    """Split the agent's free-form context into the parts the page lays out specially."""
    context = dict(context or {})
    request_text = context.pop("request", "") or context.pop("original_request", "")
    reasoning = context.pop("reasoning", []) or []
    if isinstance(reasoning, str):
        reasoning = [reasoning]
    return {
        "request": request_text,
        "reasoning": [r if isinstance(r, str) else str(r) for r in reasoning],
        "extra": json_value_html(context) if context else None,
    }


def schema_fields(schema: Any) -> list[dict]:
    """The top-level arguments an `action.args_schema` describes, for the edit form."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    required = set(schema.get("required") or [])
    fields = []
    for name, spec in schema["properties"].items():
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type") or ("one of" if "enum" in spec else "any")
        fields.append(
            {
                "name": name,
                "type": " | ".join(kind) if isinstance(kind, list) else str(kind),
                "required": name in required,
                "description": str(spec.get("description") or spec.get("title") or ""),
                "enum": [str(v) for v in spec.get("enum", [])][:20],
            }
        )
    return fields


def _source(cp: Checkpoint) -> dict | None:
    found = source_for(cp.context)
    if found is None:
        return None
    name, source = found
    warning = ""
    if (
        name == "humanlayer"
        and cp.kind == Checkpoint.Kind.APPROVAL
        and not ((cp.action or {}).get("args"))
    ):
        warning = (
            "HumanLayer sends only keyword arguments: this call may have positional "
            "arguments that are not shown here."
        )
    return {"name": name, "label": source.label, "note": source.note, "warning": warning}


def step_up_url(cp: Checkpoint) -> str:
    """allauth's reauthentication with the authenticator, back to the review page after."""
    review = reverse("admin:approvals_checkpoint_review", args=[cp.pk])
    return f"{reverse('mfa_reauthenticate')}?{urlencode({'next': review})}"


def build(
    model_admin: ModelAdmin,
    request: HttpRequest,
    cp: Checkpoint,
    *,
    form: DecisionForm | None = None,
    preview: dict | None = None,
    proposal=None,
) -> dict:
    user = request.user
    now = timezone.now()
    decisions = list(
        cp.decisions.select_related("reviewer", "policy_version").order_by("created_at", "id")
    )
    all_artifacts = list(cp.artifacts.order_by("created_at", "name"))
    by_id = {a.pk: a for a in all_artifacts}
    originals = [a for a in all_artifacts if not a.edited_from_id]
    edited = [a for a in all_artifacts if a.edited_from_id]
    latest = current_artifacts(cp, all_artifacts)
    pending = cp.status == Checkpoint.Status.PENDING
    four_eyes = rules.four_eyes_excluded(user, cp)
    may_decide = pending and rules.can_decide(user, cp) and not four_eyes
    claim_active = cp.claim_is_active(now)
    claimed_by_me = claim_active and cp.claimed_by_id == user.pk
    claimed_by_other = claim_active and not claimed_by_me
    manager = is_manager(user)
    if form is None and may_decide:
        form = DecisionForm(cp, latest)
    # High risk with MFA: deciding needs a fresh second factor; say so before they try.
    step_up = may_decide and rules.step_up_needed(credential_for(request), cp)
    timeline, timeline_hidden = queries.run_timeline(user, cp)
    prev_item, next_item = queries.neighbours(user, cp)
    action = cp.action or {}
    final = cp.final_action
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": cp.title,
        "cp": cp,
        "now": now,
        "run": cp.run,
        "agent": cp.agent,
        "decisions": decisions,
        "routing": queries.routing(cp, decisions),
        "context_sections": _context_sections(cp.context),
        "action_tool": action.get("tool", ""),
        "action_args_html": json_value_html(action.get("args", {})) if action else None,
        "action_extra": {
            k: v for k, v in action.items() if k not in ("tool", "args", "args_schema")
        },
        "args_schema_fields": schema_fields(action.get("args_schema")),
        "source": _source(cp),
        "allowed": rules.allowed_outcomes(cp),
        "final_action_html": (
            json_value_html(final) if final is not None and final != action else None
        ),
        "artifacts": [render_artifacts.render(a) for a in originals],
        "artifact_edits": [
            {
                "artifact": a,
                "original": by_id.get(a.edited_from_id),
                "sections": render_artifacts.edit_diff(by_id[a.edited_from_id], a),
            }
            for a in edited
            if a.edited_from_id in by_id
        ],
        "timeline": timeline,
        "timeline_hidden": timeline_hidden,
        "pending": pending,
        "may_decide": may_decide,
        "four_eyes": four_eyes and pending,
        "has_role": rules.can_decide(user, cp),
        "is_manager": manager,
        "claim_active": claim_active,
        "claimed_by_me": claimed_by_me,
        "claimed_by_other": claimed_by_other,
        "form": form,
        "preview": preview,
        "reassign_form": (
            ReassignForm(queries.eligible_reviewers(cp)) if manager and pending else None
        ),
        "prev_item": prev_item,
        "next_item": next_item,
        "audit_events": queries.audit_trail(cp),
        "options": form.options if form else [],
        "reject_options": form.reject_options if form else [],
        "claim_minutes": settings.HITL_CLAIM_LEASE // 60,
        "policy_version": cp.policy_version,
        "automatic": next((d for d in decisions if d.policy_version_id), None),
        "shadow_matches": list(cp.shadow_matches.select_related("version")),
        "standing_rules": policy_pages.standing_rules_for(cp),
        "proposal": proposal
        if proposal is not None
        else (policy_pages.proposal_form(cp) if policy_pages.may_propose(user, cp) else None),
        "standing_rule_max_days": settings.HITL_STANDING_RULE_MAX_DAYS,
        "step_up": step_up,
        "step_up_url": step_up_url(cp) if step_up else "",
        "step_up_minutes": settings.HITL_STEP_UP_SECONDS // 60,
    }
