"""The policy engine's pages in the admin: a policy's versions (publish, roll back, revoke),
replay of a draft against history, a shadow policy's agreement with people, the standing
rules list, and proposing a standing rule from a review page. Views parse and check access;
every change is a call into `approvals.policies`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import dateparse, timezone

from approvals import policies
from approvals.models import Checkpoint, Decision, Policy, PolicyVersion, Replay
from approvals.policies import replay
from approvals.policies.conditions import ConditionError, compile_condition
from approvals.rules import can_decide, four_eyes_excluded, user_review_roles
from core.exceptions import Conflict, InvalidInput, NotAllowed
from core.roles import is_manager

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


def policy_url(policy: Policy) -> str:
    return reverse("admin:approvals_policy_change", args=[policy.pk])


def state_of(policy: Policy, now=None) -> str:
    """live, draft (never published), changed (a draft newer than the live version),
    expired, revoked — for lists and badges."""
    now = now or timezone.now()
    if policy.expires_at is not None and policy.expires_at <= now and policy.live_version_id:
        return "expired"
    if policy.live_version_id is None:
        return "revoked" if policy.published_at else "draft"
    return "live"


def hits(policy: Policy) -> int:
    """Requests this policy decided automatically (any version)."""
    return policy.versions.aggregate(n=Count("decisions"))["n"]


def version_context(request: HttpRequest, policy: Policy) -> dict:
    """The versions panel of a policy's page."""
    versions = list(policy.versions.select_related("created_by").order_by("-number"))
    latest = versions[0] if versions else None
    live = policy.live_version
    user = request.user
    may = policies.may_manage(user, policy)
    four_eyes = policies.four_eyes_blocks(user, policy, latest)
    return {
        "policy": policy,
        "state": state_of(policy),
        "versions": versions,
        "latest": latest,
        "live": live,
        "has_draft": latest is not None and (live is None or latest.pk != live.pk),
        "may_manage": may,
        "four_eyes_blocked": four_eyes,
        "hits": hits(policy),
        "shadow_count": policy.versions.aggregate(n=Count("shadow"))["n"],
        "replay_days": settings.HITL_REPLAY_DAYS,
        "may_replay": policies.may_replay(user, policy),
        "condition_problem": _condition_problem(live or latest),
    }


def _condition_problem(version: PolicyVersion | None) -> str | None:
    """Why a version's condition is over the cost limits (it was stored before the check):
    shown on the policy's page, which then says how it is treated."""
    source = ((version.get("condition") if version else "") or "").strip()
    if not source:
        return None
    try:
        condition = compile_condition(source)
    except ConditionError:
        return None  # the form shows that one
    return condition.cost.problem


def _redirect_back(request: HttpRequest, policy: Policy) -> HttpResponseRedirect:
    target = request.POST.get("next") or ""
    if target.startswith("/admin/") and "//" not in target:
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(policy_url(policy))


def _act(
    model_admin: ModelAdmin, request: HttpRequest, policy: Policy, move, done: str
) -> HttpResponse:
    try:
        move()
    except Conflict as exc:
        return _conflict_response(model_admin, request, policy, exc)
    except (NotAllowed, InvalidInput) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return _redirect_back(request, policy)


def _conflict_response(
    model_admin: ModelAdmin, request: HttpRequest, policy: Policy, exc: Conflict
) -> HttpResponse:
    """409: someone else published, rolled back or revoked first. Say who and when; nothing
    of this submission was done."""
    policy.refresh_from_db()
    ctx = {
        **model_admin.admin_site.each_context(request),
        "title": "Changed meanwhile",
        "opts": Policy._meta,
        "policy": policy,
        "state": state_of(policy),
        "conflict": exc,
        "policy_url": policy_url(policy),
    }
    return TemplateResponse(request, "admin/approvals/policy/conflict.html", ctx, status=409)


def _policy(policy_id) -> Policy:
    return get_object_or_404(Policy.objects.select_related("live_version"), pk=policy_id)


def _seen_live(request: HttpRequest):
    """The live version the submitted page showed (its `live` field: a number, empty for
    none); a page without the field acts on the policy as this request loaded it."""
    if "live" not in request.POST:
        return policies.AS_PASSED
    raw = request.POST["live"]
    if raw == "":
        return None
    if not raw.isascii() or not raw.isdigit():
        raise Http404("No such version of this policy")
    return int(raw)


def _version(policy: Policy, number: str) -> PolicyVersion:
    """The version `number` (as typed in a form or a URL) of `policy`, or 404."""
    if not number.isascii() or not number.isdigit():
        raise Http404("No such version of this policy")
    return get_object_or_404(PolicyVersion, policy=policy, number=int(number))


def publish(model_admin: ModelAdmin, request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy(policy_id)
    version = None
    if request.POST.get("version"):
        version = _version(policy, request.POST["version"])
    note = request.POST.get("note", "")[:2000]
    seen = _seen_live(request)
    return _act(
        model_admin,
        request,
        policy,
        lambda: policies.policy_publish(
            policy, user=request.user, version=version, note=note, seen_live=seen
        ),
        f"“{policy.name}” is live: new requests are routed by it.",
    )


def rollback(
    model_admin: ModelAdmin, request: HttpRequest, policy_id: int, number: int
) -> HttpResponse:
    policy = _policy(policy_id)
    version = get_object_or_404(PolicyVersion, policy=policy, number=number)
    seen = _seen_live(request)
    return _act(
        model_admin,
        request,
        policy,
        lambda: policies.policy_rollback(
            policy, user=request.user, version=version, seen_live=seen
        ),
        f"“{policy.name}” is back at version {number}.",
    )


def revoke(model_admin: ModelAdmin, request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy(policy_id)
    reason = request.POST.get("reason", "")[:2000]
    seen = _seen_live(request)
    return _act(
        model_admin,
        request,
        policy,
        lambda: policies.policy_revoke(policy, user=request.user, reason=reason, seen_live=seen),
        f"“{policy.name}” is revoked: it decides nothing from now on.",
    )


def _may_read(request: HttpRequest, model_admin: ModelAdmin, policy: Policy) -> None:
    if not (
        model_admin.has_view_permission(request, policy)
        or policies.may_manage(request.user, policy)
    ):
        raise PermissionDenied


def _days(raw: str | None) -> int:
    try:
        days = int(raw or settings.HITL_REPLAY_DAYS)
    except ValueError:
        days = settings.HITL_REPLAY_DAYS
    return max(1, min(days, 3650))


def replay_page(model_admin: ModelAdmin, request: HttpRequest, policy_id: int) -> HttpResponse:
    """Replay a version (default: the latest, i.e. the draft) against the last N days: GET
    shows the form and this policy's recent replays, POST starts one in the background and
    goes to its page. The policy's managers only (`policies.may_replay`)."""
    policy = _policy(policy_id)
    if not policies.may_replay(request.user, policy):
        raise PermissionDenied
    raw = request.POST.get("version") if request.method == "POST" else request.GET.get("version")
    version = _version(policy, raw) if raw else policies.latest_version(policy)
    if version is None:
        raise Http404("This policy has no version yet")
    source = request.POST if request.method == "POST" else request.GET
    days = _days(source.get("days"))
    if request.method == "POST":
        try:
            run = replay.replay_request(policy, version, user=request.user, days=days)
        except NotAllowed as exc:
            raise PermissionDenied(str(exc)) from None
        return HttpResponseRedirect(
            reverse("admin:approvals_policy_replay_run", args=[policy.pk, run.pk])
        )
    return _replay_response(model_admin, request, policy, version, days, None)


def replay_run_page(
    model_admin: ModelAdmin, request: HttpRequest, policy_id: int, replay_id
) -> HttpResponse:
    """One replay: its progress while it runs (the page refreshes itself), its result once
    done."""
    policy = _policy(policy_id)
    if not policies.may_replay(request.user, policy):
        raise PermissionDenied
    run = get_object_or_404(
        Replay.objects.select_related("version", "requested_by"), pk=replay_id, policy=policy
    )
    return _replay_response(model_admin, request, policy, run.version, run.days, run)


def _replay_response(model_admin, request, policy, version, days, run) -> HttpResponse:
    ctx = {
        **model_admin.admin_site.each_context(request),
        "opts": Policy._meta,
        "title": f"Replay of {version.label}",
        "policy": policy,
        "version": version,
        "days": days,
        "run": run,
        "result": _result_context(run.result) if run is not None and run.result else None,
        "recent": policy.replays.select_related("version", "requested_by")[:10],
        "policy_url": policy_url(policy),
    }
    return TemplateResponse(request, "admin/approvals/policy/replay.html", ctx)


def _result_context(data: dict) -> dict:
    """A stored result, with its times as datetimes for the template."""
    parse = dateparse.parse_datetime
    out = {**data, "since": parse(data["since"])}
    out["verdict_counts"] = sorted(data.get("verdicts", {}).items())
    for key in ("unsafe", "blocked"):
        out[key] = [{**e, "created_at": parse(e["created_at"])} for e in data.get(key, [])]
    return out


def shadow_page(model_admin: ModelAdmin, request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy(policy_id)
    _may_read(request, model_admin, policy)
    ctx = {
        **model_admin.admin_site.each_context(request),
        "opts": Policy._meta,
        "title": f"Shadow mode of {policy.name}",
        "policy": policy,
        "report": replay.shadow_report(policy),
        "policy_url": policy_url(policy),
    }
    return TemplateResponse(request, "admin/approvals/policy/shadow.html", ctx)


def standing_rules(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Every standing rule the user may see (managers and publishers: all; reviewers: their
    roles'), with its state, hit count, expiry, and publish / revoke buttons."""
    user = request.user
    rules_qs = Policy.objects.exclude(standing_role="").select_related(
        "live_version", "proposed_from"
    )
    if not (is_manager(user) or user.has_perm("approvals.publish_policy")):
        rules_qs = rules_qs.filter(standing_role__in=user_review_roles(user))
    rules_qs = rules_qs.annotate(
        hit_count=Count("versions__decisions", distinct=True),
        shadow_count=Count("versions__shadow", distinct=True),
    ).order_by("-id")
    now = timezone.now()
    rows = []
    for rule in rules_qs:
        latest = policies.latest_version(rule)
        rows.append(
            {
                "rule": rule,
                "state": state_of(rule, now),
                "latest": latest,
                "may_publish": _may_publish(user, rule, latest),
                "may_revoke": rule.live_version_id is not None and _may_revoke(user, rule),
            }
        )
    ctx = {
        **model_admin.admin_site.each_context(request),
        "opts": Policy._meta,
        "title": "Standing rules",
        "rows": rows,
    }
    return TemplateResponse(request, "admin/approvals/policy/standing.html", ctx)


def _may_publish(user, rule: Policy, latest: PolicyVersion | None) -> bool:
    if latest is None or rule.live_version_id == latest.pk:
        return False
    try:
        policies.check_may_publish(user, rule, latest)
    except NotAllowed:
        return False
    return True


def _may_revoke(user, rule: Policy) -> bool:
    try:
        policies.check_may_revoke(user, rule)
    except NotAllowed:
        return False
    return True


# --- proposing a standing rule from the review page -------------------------------------------


class StandingRuleForm(forms.Form):
    condition = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "code-input"}),
        max_length=4000,
        help_text="CEL, over agent, tool, args, risk, confidence, … (pre-filled from this "
        "request: narrow it to what should always be allowed).",
    )
    days = forms.IntegerField(min_value=1, initial=30, label="For (days)")
    reason = forms.CharField(required=False, max_length=500, label="Why")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["days"].max_value = settings.HITL_STANDING_RULE_MAX_DAYS
        self.fields["days"].widget.attrs["max"] = settings.HITL_STANDING_RULE_MAX_DAYS


def may_propose(user, cp: Checkpoint) -> bool:
    """A reviewer of the checkpoint's role (not its requester) may propose a rule from an
    approval or review request."""
    return (
        cp.kind != Checkpoint.Kind.QUESTION
        and cp.status in (Checkpoint.Status.PENDING, Checkpoint.Status.APPROVED)
        and can_decide(user, cp)
        and not four_eyes_excluded(user, cp)
    )


def proposal_form(cp: Checkpoint, data=None) -> StandingRuleForm:
    initial = {"condition": policies.standing_rule_condition(cp)}
    return StandingRuleForm(data=data, initial=initial)


def standing_rules_for(cp: Checkpoint) -> list[Policy]:
    return list(cp.standing_rules.select_related("live_version"))


def auto_decision_counts(since) -> dict[str, int]:
    """Oversight: decisions by policies vs by people since `since` (one query)."""
    return Decision.objects.filter(created_at__gte=since).aggregate(
        auto_approved=Count("pk", filter=Q(policy_version__isnull=False, outcome="approve")),
        auto_rejected=Count("pk", filter=Q(policy_version__isnull=False, outcome="reject")),
        by_people=Count("pk", filter=Q(reviewer__isnull=False)),
    )
