"""The review page and the POST endpoints behind its buttons. Views parse and check access;
every state change is a call into `approvals.transitions` (the same code the API uses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.contrib import messages
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from approvals import policies, rules, selectors, services, transitions
from approvals.artifacts import artifact_response
from approvals.credentials import credential_for
from approvals.forms import DecisionForm, ReassignForm
from approvals.models import Artifact, Checkpoint
from approvals.policies import pages as policy_pages
from approvals.review import context as review_context
from approvals.review import queries
from core.admin_pages import allow
from core.exceptions import Conflict, InvalidInput, NotAllowed
from core.roles import is_manager

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


require_GET = allow("GET", "HEAD")
require_POST = allow("POST")


def review_path(cp_or_pk) -> str:
    """The review page's path (relative; `approvals.representations.review_url` is the
    absolute URL that agents and messages carry)."""
    pk = getattr(cp_or_pk, "pk", cp_or_pk)
    return reverse("admin:approvals_checkpoint_review", args=[pk])


def get_visible(request: HttpRequest, object_id) -> Checkpoint:
    """The one way these views load a checkpoint: through the role filter; 404 otherwise."""
    try:
        return selectors.checkpoint_get_for_reviewer(request.user, object_id)
    except (Checkpoint.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such checkpoint in your queue") from None


def _render(
    model_admin: ModelAdmin,
    request: HttpRequest,
    cp: Checkpoint,
    *,
    form: DecisionForm | None = None,
    status: int = 200,
    preview: dict | None = None,
    proposal=None,
) -> TemplateResponse:
    ctx = review_context.build(
        model_admin, request, cp, form=form, preview=preview, proposal=proposal
    )
    return TemplateResponse(request, "admin/approvals/checkpoint/review.html", ctx, status=status)


def conflict_response(
    model_admin: ModelAdmin, request: HttpRequest, cp: Checkpoint, exc: Conflict
) -> TemplateResponse:
    """409: someone or something else got there first. Say who and when; never decide twice."""
    cp.refresh_from_db()
    ctx = {
        **model_admin.admin_site.each_context(request),
        "title": "Already handled",
        "cp": cp,
        "conflict": exc,
        "opts": model_admin.model._meta,
        "decisions": list(cp.decisions.select_related("reviewer", "policy_version")),
        "next_item": queries.next_in_queue(request.user, cp),
        "review_url": review_path(cp),
    }
    return TemplateResponse(request, "admin/approvals/checkpoint/conflict.html", ctx, status=409)


def forbidden_response(
    model_admin: ModelAdmin, request: HttpRequest, cp: Checkpoint, exc: NotAllowed
) -> TemplateResponse:
    ctx = {
        **model_admin.admin_site.each_context(request),
        "title": "Not allowed",
        "cp": cp,
        "message": str(exc),
        "opts": model_admin.model._meta,
        "review_url": review_path(cp),
        "step_up_url": (
            review_context.step_up_url(cp) if isinstance(exc, rules.StepUpRequired) else ""
        ),
    }
    return TemplateResponse(request, "admin/approvals/checkpoint/forbidden.html", ctx, status=403)


def too_big_response(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    ctx = {**model_admin.admin_site.each_context(request), "title": "Too big"}
    return TemplateResponse(request, "admin/approvals/checkpoint/too_big.html", ctx, status=413)


# --- pages --------------------------------------------------------------------------------------


@require_GET
def review(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    cp = get_visible(request, object_id)
    services.checkpoint_viewed(cp, request.user)  # once per person: the reviewer analytics
    return _render(model_admin, request, cp)


@require_POST
def decide(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    cp = get_visible(request, object_id)
    try:
        post = request.POST
    except RequestDataTooBig:
        return too_big_response(model_admin, request)
    form = DecisionForm(cp, review_context.current_artifacts(cp), data=post)
    if not form.is_valid():
        return _render(model_admin, request, cp, form=form, status=400)
    data = form.cleaned_data
    if form.needs_confirmation:
        preview = review_context.edit_preview(cp, data)
        form.data = form.data.copy()
        form.data["confirm"] = data["edit_fingerprint"]  # the next submit confirms this edit
        return _render(model_admin, request, cp, form=form, preview=preview)
    outcome = data["outcome"]
    try:
        result = transitions.checkpoint_decide(
            cp.pk,
            request.user,
            outcome,
            comment=data.get("comment", "").strip(),
            action=data["edited_action"] if data.get("args_changed") else None,
            answer=(data.get("answer") or "").strip(),
            channel="web",
            edited_artifacts=data.get("artifact_edits") or None,
            seen_action_sha256=data.get("seen_action", ""),
            credential=credential_for(request),
            checked=data.get("edit_check"),
        )
    except Conflict as exc:
        return conflict_response(model_admin, request, cp, exc)
    except NotAllowed as exc:
        return forbidden_response(model_admin, request, cp, exc)
    except InvalidInput as exc:
        form.add_invalid(exc)
        return _render(model_admin, request, cp, form=form, status=400)
    label = result.decision.get_outcome_display().lower()
    if result.resolved:
        messages.success(request, f"“{cp.title}”: {label} — {result.checkpoint.status}.")
    elif result.stage_advanced:
        messages.success(
            request,
            f"“{cp.title}”: {label}; on to the next stage ({result.checkpoint.current_role}).",
        )
    else:
        messages.success(request, f"“{cp.title}”: your {label} is recorded; more approvals needed.")
    nxt = queries.next_in_queue(request.user, cp)
    if nxt is not None:
        return HttpResponseRedirect(review_path(nxt))
    return HttpResponseRedirect(reverse("admin:approvals_checkpoint_changelist"))


def _transition(
    model_admin: ModelAdmin,
    request: HttpRequest,
    cp: Checkpoint,
    move: Callable[[Checkpoint], Checkpoint],
    message: Callable[[Checkpoint], str],
    level: int = messages.SUCCESS,
) -> HttpResponse:
    """Claim, release, reassign: run the transition, say what happened, back to the page; a
    lost race or a refusal gets its own page instead."""
    try:
        moved = move(cp)
    except Conflict as exc:
        return conflict_response(model_admin, request, cp, exc)
    except NotAllowed as exc:
        return forbidden_response(model_admin, request, cp, exc)
    messages.add_message(request, level, message(moved))
    return HttpResponseRedirect(review_path(cp))


@require_POST
def claim(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    def move(cp: Checkpoint) -> Checkpoint:
        return transitions.checkpoint_claim(cp.pk, request.user)

    def said(cp: Checkpoint) -> str:
        return f"You hold “{cp.title}” until {cp.claim_expires_at:%H:%M} UTC."

    return _transition(model_admin, request, get_visible(request, object_id), move, said)


@require_POST
def release(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    cp = get_visible(request, object_id)
    return _transition(
        model_admin,
        request,
        cp,
        lambda cp: transitions.checkpoint_release(cp.pk, request.user),
        lambda cp: f"Released “{cp.title}”.",
        messages.INFO,
    )


@require_POST
def reassign(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    cp = get_visible(request, object_id)
    if not is_manager(request.user):
        return forbidden_response(
            model_admin, request, cp, NotAllowed("Only managers can reassign a checkpoint")
        )
    form = ReassignForm(queries.eligible_reviewers(cp), data=request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a reviewer who holds the checkpoint's current role.")
        return HttpResponseRedirect(review_path(cp))
    target = form.cleaned_data["reviewer"]
    return _transition(
        model_admin,
        request,
        cp,
        lambda cp: transitions.checkpoint_release(cp.pk, request.user, reassign_to=target),
        lambda cp: f"“{cp.title}” is now held by {target.get_username() if target else 'nobody'}.",
    )


@require_POST
def preview_edit(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """The original → edited diff as an HTML fragment, for the page's live preview. The same
    form and renderer as the no-script confirmation step."""
    cp = get_visible(request, object_id)
    try:
        post = request.POST.copy()
    except RequestDataTooBig:
        return JsonResponse({"errors": {"__all__": ["Too big"]}}, status=413)
    post["outcome"] = "modify"
    form = DecisionForm(cp, review_context.current_artifacts(cp), data=post)
    if not form.is_valid():
        return JsonResponse(
            {"errors": {k: [str(e) for e in v] for k, v in form.errors.items()}}, status=400
        )
    preview = review_context.edit_preview(cp, form.cleaned_data)
    html = TemplateResponse(
        request, "admin/approvals/checkpoint/_edit_preview.html", {"preview": preview}
    ).rendered_content
    return JsonResponse({"html": html, "confirm": form.cleaned_data["edit_fingerprint"]})


@require_GET
def artifact_download(
    model_admin: ModelAdmin, request: HttpRequest, object_id: str, artifact_id: str
) -> HttpResponse:
    cp = get_visible(request, object_id)
    try:
        artifact = get_object_or_404(Artifact, pk=artifact_id, checkpoint=cp)
    except ValidationError:
        raise Http404("No such artifact") from None
    return artifact_response(artifact, inline=request.GET.get("inline") == "1")


@require_GET
def poll(model_admin: ModelAdmin, request: HttpRequest) -> JsonResponse:
    """The queue page polls this; when the fingerprint moves it refetches itself."""
    return JsonResponse({"seq": queries.latest_change_seq()})


@require_POST
def propose_rule(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """POST from the review page: a draft standing rule from this request (another reviewer
    of the role or a manager publishes it)."""
    cp = get_visible(request, object_id)
    form = policy_pages.proposal_form(cp, request.POST)
    if not form.is_valid():
        return _render(model_admin, request, cp, proposal=form, status=400)
    data = form.cleaned_data
    try:
        rule = policies.standing_rule_propose(
            cp, request.user, condition=data["condition"], days=data["days"], reason=data["reason"]
        )
    except NotAllowed as exc:
        return forbidden_response(model_admin, request, cp, exc)
    except InvalidInput as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _render(model_admin, request, cp, proposal=form, status=400)
    messages.success(
        request,
        f"Standing rule “{rule.name}” proposed: another reviewer of {rule.standing_role} or a "
        "manager must publish it before it approves anything.",
    )
    return HttpResponseRedirect(reverse("admin:approvals_policy_standing"))
