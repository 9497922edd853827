"""The oversight pages. Views parse the filters and check access (`managers_only`: 404 for
everyone else); the figures come from `oversight.analytics`, the words from `describe`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from approvals.models import Checkpoint, Decision
from audit.models import AuditEvent, AuditVerb
from core import backlog
from core.exceptions import Conflict, InvalidInput
from core.queue import enqueue
from oversight import analytics as metrics
from oversight import drills, exports
from oversight import timeline as timelines
from oversight.access import managers_only
from oversight.describe import describe
from oversight.forms import AuditFilterForm, DashboardForm, DrillForm, ReviewerForm
from oversight.models import Drill

PAGE = 50
ITEMS = 15  # breaching and escalated items listed on the dashboard (the exports have all)


def _ctx(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, "oversight": True, **extra}


def _type_label(agents: dict[int, str], key: tuple) -> str:
    agent_id, kind, tool = key
    return metrics.checkpoint_type(
        agents.get(agent_id, f"agent #{agent_id}"), kind or "approval", tool
    )


def _chart(labels: list, *series: tuple[str, list], kind: str = "bar", **options: Any) -> dict:
    """A chart's data for `static/hitl/oversight.js` (Chart.js): the same numbers as the
    table beside it."""
    return {
        "type": kind,
        "labels": [str(x) for x in labels],
        "series": [{"label": name, "data": data} for name, data in series],
        **options,
    }


@managers_only("GET", "HEAD")
def dashboard(request: HttpRequest) -> HttpResponse:
    form = DashboardForm(request.GET or None)
    if request.GET and not form.is_valid():
        return TemplateResponse(
            request,
            "admin/oversight/dashboard.html",
            _ctx(request, "Oversight", form=form),
            status=400,
        )
    if not request.GET:
        form = DashboardForm({"period": "7"})
        form.is_valid()
    filters = form.filters()
    board = metrics.dashboard(filters, items=ITEMS)
    for cp in board.breaching:
        if cp.resolved_at:
            cp.late_seconds = (cp.resolved_at - cp.sla_due_at).total_seconds()
    agents = dict(Agent.objects.values_list("pk", "slug"))
    for g in board.by_type:
        g.label = _type_label(agents, g.key)
    total = board.total
    outcome_rows = [
        (metrics.OUTCOME_LABELS[name], name, total.outcomes.get(name, 0))
        for name in metrics.OUTCOMES
    ]
    charts = {
        "chart-weeks": _chart(
            [g.label.replace("week of ", "") for g in board.by_week],
            ("p50 to decision (s)", [g.ttd_p[50] for g in board.by_week]),
            ("p90 to decision (s)", [g.ttd_p[90] for g in board.by_week]),
            ("p50 to resume (s)", [g.ttr_p[50] for g in board.by_week]),
            kind="line",
        ),
        "chart-types": _chart(
            [g.label for g in board.by_type[:15]],
            ("p50 (s)", [g.ttd_p[50] for g in board.by_type[:15]]),
            ("p90 (s)", [g.ttd_p[90] for g in board.by_type[:15]]),
            horizontal=True,
        ),
        "chart-outcomes": _chart(
            [label for label, _n, _c in outcome_rows],
            ("checkpoints", [count for _l, _n, count in outcome_rows]),
            kind="doughnut",
        ),
        "chart-depth": _chart(
            [f"{d['day']:%m-%d}" for d in board.days],
            ("pending at day end", [d["depth"] for d in board.days]),
            ("requests", [d["requests"] for d in board.days]),
            ("resolved", [d["resolved"] for d in board.days]),
            kind="line",
        ),
        "chart-sla": _chart(
            [g.label for g in board.by_policy],
            (
                "breach rate %",
                [
                    round(100 * g.sla_rate, 1) if g.sla_rate is not None else None
                    for g in board.by_policy
                ],
            ),
        ),
    }
    query = request.GET.urlencode()
    return TemplateResponse(
        request,
        "admin/oversight/dashboard.html",
        _ctx(
            request, "Oversight", form=form, board=board, outcomes=outcome_rows, charts=charts,
            query=query, percentiles=metrics.PERCENTILES, items=ITEMS,
            backlog=backlog.snapshot(), task_warn=settings.HITL_TASK_QUEUE_WARN_SECONDS,
            outbox_warn=settings.HITL_OUTBOX_WARN_SECONDS, docs_url=settings.HITL_DOCS_URL,
        ),
    )  # fmt: skip


@managers_only("GET", "HEAD")
def reviewers(request: HttpRequest) -> HttpResponse:
    form = ReviewerForm(request.GET or {"period": "30"})
    if not form.is_valid():
        return TemplateResponse(
            request,
            "admin/oversight/reviewers.html",
            _ctx(request, "Reviewers", form=form),
            status=400,
        )
    d = form.cleaned_data
    start = dt.datetime.combine(d["start"], dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(d["end"], dt.time.min, tzinfo=dt.UTC) + dt.timedelta(days=1)
    report = metrics.reviewer_stats(start, end, role=d.get("role") or "")
    return TemplateResponse(
        request,
        "admin/oversight/reviewers.html",
        _ctx(
            request,
            "Reviewers",
            form=form,
            report=report,
            flagged=[r for r in report.rows if r.flag],
        ),
    )


# --- drills -----------------------------------------------------------------------------------


def _drill_rows(qs) -> list[dict]:
    rows = []
    for drill in qs:
        cp = next(iter(drill.checkpoints.all()), None)
        votes = list(cp.decisions.all()) if cp else []
        catcher = next((v for v in votes if v.outcome == Decision.Outcome.REJECT), None)
        rows.append(
            {
                "drill": drill,
                "cp": cp,
                "votes": votes,
                "caught_by": catcher.reviewer.get_username() if catcher else "",
                "caught_after": (
                    (catcher.created_at - drill.released_at).total_seconds()
                    if catcher and drill.released_at
                    else None
                ),
                "missed_by": [v.reviewer.get_username() for v in votes if v.outcome == "approve"],
            }
        )
    return rows


@managers_only("GET", "HEAD")
def drill_list(request: HttpRequest) -> HttpResponse:
    qs = Drill.objects.select_related("created_by", "source").prefetch_related(
        "checkpoints__decisions__reviewer"
    )[:200]
    recent = (
        Checkpoint.objects.exclude(status=Checkpoint.Status.PENDING)
        .select_related("agent")
        .order_by("-created_at")[:15]
    )
    summary = dict(
        Drill.objects.exclude(outcome="")
        .values("outcome")
        .annotate(n=Count("id"))
        .values_list("outcome", "n")
    )
    return TemplateResponse(
        request,
        "admin/oversight/drills.html",
        _ctx(request, "Drills", rows=_drill_rows(qs), recent=recent, summary=summary,
             outcomes=Drill.Outcome),
    )  # fmt: skip


@managers_only("GET", "HEAD", "POST")
def drill_new(request: HttpRequest) -> HttpResponse:
    source = None
    source_id = request.GET.get("from") or request.POST.get("source")
    if source_id:
        try:
            source = Checkpoint.objects.select_related("agent").get(pk=source_id)
        except (Checkpoint.DoesNotExist, ValidationError, ValueError):
            raise Http404("No such checkpoint") from None
    if request.method == "POST":
        form = DrillForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                drill = drills.drill_schedule(
                    user=request.user,
                    name=d.get("name") or "",
                    defect=d["defect"],
                    request=form.request(),
                    source=source,
                    release_at=d.get("release_at"),
                )
            except InvalidInput as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                messages.success(request, f"Drill “{drill.name}” scheduled.")
                return HttpResponseRedirect(reverse("admin:oversight_drill", args=[drill.pk]))
        status = 400
    else:
        initial: dict[str, Any] = {"expires_in": 3600}
        if source is not None:
            req = drills.request_from(source)
            initial.update({k: v for k, v in req.items() if k != "agent"})
            initial.update(
                agent=source.agent.slug, source=source.pk, name=f"Drill: {source.title}"[:200]
            )
        form = DrillForm(initial=initial)
        status = 200
    return TemplateResponse(
        request,
        "admin/oversight/drill_new.html",
        _ctx(request, "New drill", form=form, source=source),
        status=status,
    )


@managers_only("GET", "HEAD")
def drill_detail(request: HttpRequest, pk: int) -> HttpResponse:
    qs = Drill.objects.select_related("created_by", "source").prefetch_related(
        "checkpoints__decisions__reviewer"
    )
    drill = get_object_or_404(qs, pk=pk)
    (row,) = _drill_rows([drill])
    events = list(
        AuditEvent.objects.filter(target_type="approvals.drill", target_id=str(drill.pk)).order_by(
            "id"
        )
    )
    return TemplateResponse(
        request,
        "admin/oversight/drill.html",
        _ctx(request, drill.name, row=row, drill=drill, events=describe(events),
             request_json=json.dumps(drill.request, indent=2, ensure_ascii=False)),
    )  # fmt: skip


@managers_only("POST")
def drill_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    drill = get_object_or_404(Drill, pk=pk)
    try:
        drills.drill_withdraw(drill.pk, request.user)
        messages.success(request, f"Drill “{drill.name}” withdrawn.")
    except Conflict as exc:
        messages.error(request, str(exc))
    return HttpResponseRedirect(reverse("admin:oversight_drill", args=[drill.pk]))


# --- the audit explorer ---------------------------------------------------------------------


@managers_only("GET", "HEAD")
def audit_explorer(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return TemplateResponse(
            request,
            "admin/oversight/audit.html",
            _ctx(request, "Audit trail", form=form),
            status=400,
        )
    qs = AuditEvent.objects.filter(form.query())
    before = form.cleaned_data.get("before")
    if before:
        qs = qs.filter(id__lt=before)
    # Newest first, by insert order (every event has its id at once; its ledger seq only
    # once the sequencer logged it). Under a date range the time index serves the order.
    dated = form.cleaned_data.get("start") or form.cleaned_data.get("end")
    events = list(qs.order_by(*(("-at", "-id") if dated else ("-id",)))[: PAGE + 1])
    more = len(events) > PAGE
    events = events[:PAGE]
    last_check = AuditEvent.objects.filter(verb=AuditVerb.AUDIT_VERIFIED).order_by("-id").first()
    return TemplateResponse(
        request,
        "admin/oversight/audit.html",
        _ctx(
            request, "Audit trail", form=form, events=describe(events),
            next_query=form.params(before=events[-1].id) if more and events else "",
            query=form.params(), filtered=any(v for k, v in form.cleaned_data.items() if v),
            last_check=describe([last_check])[0] if last_check else None,
        ),
    )  # fmt: skip


@managers_only("POST")
def audit_verify(request: HttpRequest) -> HttpResponse:
    """Verify the chain now: a task (a long chain takes a while), whose result is itself an
    audit event the explorer shows."""
    enqueue("oversight.tasks.verify_audit_chain", request.user.pk, reason="verify now")
    messages.info(
        request,
        "Verification started; its result appears below as an “audit chain verified” event.",
    )
    return HttpResponseRedirect(reverse("admin:oversight_audit") + "?verb=audit.verified")


@managers_only("GET", "HEAD")
def checkpoint_timeline(request: HttpRequest, pk) -> HttpResponse:
    cp = get_object_or_404(
        Checkpoint.with_drills.select_related("agent", "policy", "resolved_by", "run", "drill"),
        pk=pk,
    )
    steps = timelines.build(cp)
    return TemplateResponse(
        request,
        "admin/oversight/timeline.html",
        _ctx(request, f"Timeline: {cp.title}", cp=cp, steps=steps,
             times=metrics.with_times(Checkpoint.with_drills.filter(pk=cp.pk)).values(
                 "time_to_decision", "time_to_resume", "sla_breached").first(),
             now=timezone.now()),
    )  # fmt: skip


# --- exports ----------------------------------------------------------------------------------


def _bad_filters(form) -> HttpResponse:
    return HttpResponse(
        json.dumps({"errors": form.errors.get_json_data()}),
        status=400,
        content_type="application/json",
    )


def _period_filters(request: HttpRequest) -> tuple[metrics.Filters | None, HttpResponse | None]:
    """The dashboard's filters (what its export links carry), or a 400 with field errors."""
    form = DashboardForm(request.GET or {"period": "7"})
    if not form.is_valid():
        return None, _bad_filters(form)
    return form.filters(), None


@managers_only("GET", "HEAD")
def export_audit(request: HttpRequest, fmt: str) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _bad_filters(form)
    rows = exports.audit_rows(AuditEvent.objects.filter(form.query()))
    filters = {k: v for k, v in form.cleaned_data.items() if v and k != "before"}
    return exports.streamed(request, "audit-events", fmt, exports.AUDIT_COLUMNS, rows, filters)


@managers_only("GET", "HEAD")
def export_checkpoints(request: HttpRequest, fmt: str) -> HttpResponse:
    filters, error = _period_filters(request)
    if error:
        return error
    rows = exports.checkpoint_rows(filters.checkpoints())
    return exports.streamed(
        request, "checkpoints", fmt, exports.CHECKPOINT_COLUMNS, rows, vars(filters)
    )


def _decisions_of(filters: metrics.Filters):
    return Decision.objects.filter(checkpoint__in=filters.checkpoints())


@managers_only("GET", "HEAD")
def export_decisions(request: HttpRequest, fmt: str) -> HttpResponse:
    filters, error = _period_filters(request)
    if error:
        return error
    rows = exports.decision_rows(_decisions_of(filters))
    return exports.streamed(
        request, "decisions", fmt, exports.DECISION_COLUMNS, rows, vars(filters)
    )


@managers_only("GET", "HEAD")
def export_edits(request: HttpRequest) -> HttpResponse:
    """The feedback sink: every reviewer edit of the period, as JSON Lines."""
    filters, error = _period_filters(request)
    if error:
        return error
    rows = exports.edit_rows(_decisions_of(filters))
    return exports.streamed(request, "reviewer-edits", "jsonl", [], rows, vars(filters))


@managers_only("GET", "HEAD")
def export_evidence(request: HttpRequest) -> HttpResponse:
    filters, error = _period_filters(request)
    if error:
        return error
    exports.record_export(request.user, "evidence-pack", "zip", vars(filters))
    response = StreamingHttpResponse(
        exports.pack_stream(request.user, filters), content_type="application/zip"
    )
    name = f"evidence-{filters.start:%Y%m%d}-{filters.end:%Y%m%d}.zip"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response
