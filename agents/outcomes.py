"""What a run came to, in words: a run's status says whether it ended, not what it did.

    action executed     it did what it set out to do (each action approved, then executed)
    partially done      some actions were executed, others were not (rejected, expired, ...)
    nothing done        no action was executed: rejected / expired / cancelled (and why)
    failed              it broke (partially done, if something ran first)
    waiting for a human / running

Read from the run's rows: its executed steps (hosted runs), its checkpoints' outcomes and
its final report. `annotate_outcomes` adds the counts to a queryset so a list of runs costs
no query per row.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from agents.models import Agent, Run, RunStep
from approvals.models import Checkpoint

CP = Checkpoint.Status


@dataclass(frozen=True)
class Outcome:
    code: str  # executed, partial, nothing, failed, waiting, running
    text: str

    @property
    def css(self) -> str:
        return {
            "executed": "outcome-approve",
            "partial": "outcome-modify",
            "nothing": "status-expired",
            "failed": "status-failed",
        }.get(self.code, "status-pending")


def _count(model, status_filter: Q, *, run_field: str = "run") -> Subquery:
    rows = (
        model.objects.filter(status_filter, **{run_field: OuterRef("pk")})
        .order_by()
        .values(run_field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def annotate_outcomes(qs: QuerySet[Run]) -> QuerySet[Run]:
    """Counts `outcome_for` reads: executed steps, approved / rejected / expired / cancelled
    checkpoints."""
    return qs.annotate(
        n_executed=_count(RunStep, Q(status=RunStep.Status.SUCCEEDED)),
        n_approved=_count(Checkpoint, Q(status__in=[CP.APPROVED, CP.ANSWERED])),
        n_rejected=_count(Checkpoint, Q(status=CP.REJECTED)),
        n_expired=_count(Checkpoint, Q(status=CP.EXPIRED)),
        n_cancelled=_count(Checkpoint, Q(status=CP.CANCELLED)),
    )


def _counts(run: Run) -> dict[str, int]:
    if hasattr(run, "n_executed"):
        return {
            k: getattr(run, f"n_{k}")
            for k in ("executed", "approved", "rejected", "expired", "cancelled")
        }
    by_status = dict(
        run.checkpoints.values("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {
        "executed": run.steps.filter(status=RunStep.Status.SUCCEEDED).count(),
        "approved": by_status.get(CP.APPROVED, 0) + by_status.get(CP.ANSWERED, 0),
        "rejected": by_status.get(CP.REJECTED, 0),
        "expired": by_status.get(CP.EXPIRED, 0),
        "cancelled": by_status.get(CP.CANCELLED, 0),
    }


def _why(c: dict[str, int]) -> str:
    parts = [f"{c[k]} {k}" for k in ("rejected", "expired", "cancelled") if c[k]]
    return ", ".join(parts)


def outcome_for(run: Run) -> Outcome:
    c = _counts(run)
    hosted = run.agent.kind == Agent.Kind.HOSTED
    report = run.result if isinstance(run.result, dict) else {}
    done = c["executed"] if hosted else c["approved"]
    if hosted and report.get("done") is not None:
        done = max(done, len(report.get("done") or []))
    not_done = c["rejected"] + c["expired"] + c["cancelled"]
    if hosted and report.get("not_done"):
        not_done = max(not_done, len(report["not_done"]))
    if run.status == Run.Status.WAITING:
        return Outcome("waiting", "waiting for a human")
    if run.status == Run.Status.RUNNING:
        return Outcome("running", "running")
    if run.status == Run.Status.FAILED:
        if done:
            return Outcome("failed", f"failed after {done} action(s) executed: partially done")
        return Outcome("failed", "failed — nothing done")
    if done and not_done:
        return Outcome("partial", f"partially done: {done} executed, {_why(c) or 'some not'}")
    if done:
        return Outcome("executed", f"action executed ({done})" if done > 1 else "action executed")
    if run.status == Run.Status.CANCELLED:
        return Outcome("nothing", "nothing done — run cancelled")
    if not_done:
        return Outcome("nothing", f"nothing done — {_why(c)}")
    return Outcome("nothing", "completed — nothing needed approval")
