"""GET /metrics: Prometheus text format, with the maintained `prometheus-client`.

Two sources, one page:
- counted in the processes (`core.metrics`): requests by route and status, time to decision
  by agent and tool, sweep runs and durations, delivery attempts. Under several web workers
  and clusters set `PROMETHEUS_MULTIPROC_DIR` (see core.metrics): this view then adds up
  every process's files (`MultiProcessCollector`);
- read from the rows at scrape time (`DatabaseCollector`): queue depth and the oldest pending
  age by role, decisions by outcome, SLA breaches, webhook deliveries by state, and the
  background work's back-pressure (`core.backlog`: the task queue's depth and oldest task's
  age from the broker, the due outbox rows and the oldest one's age). Right across every
  process and machine, and a handful of indexed queries.

Access: a bearer token (`HITL_METRICS_TOKEN`) or an allow-listed network
(`HITL_METRICS_ALLOW`, CIDRs matched against the client address). With neither configured
the endpoint does not exist (404): never open by default in production. Under DEBUG the
allow-list defaults to this machine.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from agents.models import Agent, WebhookDelivery
from approvals.models import Checkpoint, Decision
from approvals.signals import checkpoint_resolved
from core.backlog import snapshot as backlog_snapshot
from core.clientip import client_ip
from core.metrics import HTTP_DURATION, HTTP_REQUESTS, TIME_TO_DECISION

DECIDED = (Checkpoint.Status.APPROVED, Checkpoint.Status.REJECTED, Checkpoint.Status.ANSWERED)


class DatabaseCollector(Collector):
    """Figures the rows hold, read at scrape time (drills left out)."""

    def collect(self) -> Iterator:
        now = timezone.now()
        real = Checkpoint.objects.all()
        depth = GaugeMetricFamily(
            "hitl_queue_depth",
            "Pending checkpoints, by the role that must decide.",
            labels=["role"],
        )
        oldest = GaugeMetricFamily(
            "hitl_queue_oldest_pending_age_seconds",
            "Age of the oldest pending checkpoint, by role.",
            labels=["role"],
        )
        for row in (
            real.filter(status=Checkpoint.Status.PENDING)
            .values("current_role")
            .annotate(n=Count("id"), first=Min("created_at"))
            .order_by("current_role")
        ):
            depth.add_metric([row["current_role"]], row["n"])
            oldest.add_metric([row["current_role"]], (now - row["first"]).total_seconds())
        yield depth
        yield oldest
        decisions = CounterMetricFamily(
            "hitl_decisions", "Reviewers' votes, by outcome.", labels=["outcome"]
        )
        counts = dict(
            Decision.objects.filter(checkpoint__drill__isnull=True)
            .values("outcome")
            .annotate(n=Count("id"))
            .values_list("outcome", "n")
        )
        for outcome in Decision.Outcome.values:
            decisions.add_metric([outcome], counts.get(outcome, 0))
        yield decisions
        resolved = CounterMetricFamily(
            "hitl_checkpoints_resolved", "Resolved checkpoints, by status.", labels=["status"]
        )
        by_status = dict(
            real.exclude(status=Checkpoint.Status.PENDING)
            .values("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        for status in Checkpoint.RESOLVED:
            resolved.add_metric([status], by_status.get(status, 0))
        yield resolved
        sla = real.aggregate(
            breached=Count("id", filter=Q(sla_breached_at__isnull=False)),
            breaching=Count(
                "id",
                filter=Q(status=Checkpoint.Status.PENDING, sla_due_at__lte=now),
            ),
        )
        yield CounterMetricFamily(
            "hitl_sla_breaches", "Checkpoints marked as past their SLA undecided.",
            value=sla["breached"],
        )  # fmt: skip
        yield GaugeMetricFamily(
            "hitl_sla_breaching", "Pending checkpoints past their SLA right now.",
            value=sla["breaching"],
        )  # fmt: skip
        deliveries = GaugeMetricFamily(
            "hitl_webhook_deliveries",
            "Webhook deliveries to agents, by state (pending, delivered, failed).",
            labels=["status"],
        )
        by_state = dict(
            WebhookDelivery.objects.values("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        for status in WebhookDelivery.Status.values:
            deliveries.add_metric([status], by_state.get(status, 0))
        yield deliveries
        yield from backlog_metrics(now)


def backlog_metrics(now) -> Iterator:
    """The background work's back-pressure (`core.backlog`): the task queue as its broker
    reports it, and the outbox rows that are due. A broker that cannot be read (Redis down)
    is logged and left out; the rest of the page still answers."""
    backlog = backlog_snapshot(now)
    tasks = backlog.tasks
    if tasks is not None:
        depth = GaugeMetricFamily(
            "hitl_task_queue_depth", "Tasks waiting for a django-q2 worker.", labels=["broker"]
        )
        depth.add_metric([tasks.broker], tasks.depth)
        yield depth
        if tasks.in_flight is not None:
            taken = GaugeMetricFamily(
                "hitl_task_queue_in_flight",
                "Tasks a worker has taken and not acknowledged yet (ORM broker).",
                labels=["broker"],
            )
            taken.add_metric([tasks.broker], tasks.in_flight)
            yield taken
        oldest = GaugeMetricFamily(
            "hitl_task_queue_oldest_age_seconds",
            "How long the oldest waiting task has waited (0: none waiting; the Redis broker: "
            "0 also when its package cannot be read).",
            labels=["broker"],
        )
        oldest.add_metric([tasks.broker], tasks.oldest_age or 0.0)
        yield oldest
    due = GaugeMetricFamily(
        "hitl_outbox_due",
        "Pending outbox rows whose attempt is due (being sent or waiting for a worker), by kind.",
        labels=["kind"],
    )
    oldest_due = GaugeMetricFamily(
        "hitl_outbox_oldest_due_age_seconds",
        "How long the oldest due outbox row has waited, by kind (0: none due).",
        labels=["kind"],
    )
    for lag in backlog.outbox:
        due.add_metric([lag.kind], lag.due)
        oldest_due.add_metric([lag.kind], lag.oldest_due_age or 0.0)
    yield due
    yield oldest_due
    yield GaugeMetricFamily(
        "hitl_background_behind",
        "1 while the task queue or an outbox is older than its threshold "
        "(HITL_TASK_QUEUE_WARN_SECONDS, HITL_OUTBOX_WARN_SECONDS), else 0.",
        value=int(backlog.behind),
    )


def registry() -> CollectorRegistry:
    """The scrape's registry: every process's counters (multi-process mode) or this one's,
    plus the database figures."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg, path=path)
    else:
        reg = CollectorRegistry()
        reg.register(_ProcessMetrics())
    reg.register(DatabaseCollector())
    return reg


class _ProcessMetrics(Collector):
    """This process's own instruments (single-process mode)."""

    def collect(self) -> Iterator:
        yield from PROCESS_REGISTRY.collect()


def _allowed_network(request: HttpRequest) -> bool:
    try:
        client = ipaddress.ip_address(client_ip(request.META))
    except ValueError:
        return False
    for network in settings.HITL_METRICS_ALLOW:
        try:
            if client in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


def _token_ok(request: HttpRequest) -> bool:
    expected = settings.HITL_METRICS_TOKEN
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return bool(
        expected
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.strip().encode(), expected.encode())
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not settings.HITL_METRICS_TOKEN and not settings.HITL_METRICS_ALLOW:
        raise Http404("Metrics are not enabled (HITL_METRICS_TOKEN or HITL_METRICS_ALLOW).")
    if not (_token_ok(request) or _allowed_network(request)):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """Counts every answered request by route (the URL pattern, so the label set stays
    small: `api/v1/checkpoints/<uuid:pk>/`, not each id), method and status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name) if match else "<unmatched>"
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        HTTP_DURATION.labels(route).observe(time.perf_counter() - started)
        return response


@receiver(checkpoint_resolved, dispatch_uid="api.metrics.time_to_decision")
def observe_decision(sender, checkpoint: Checkpoint, **kwargs) -> None:
    """Observed after commit, in the process that decided (never for expiries; drills are
    not announced by checkpoint_resolved)."""
    if checkpoint.status not in DECIDED or not checkpoint.resolved_at:
        return
    seconds = (checkpoint.resolved_at - checkpoint.created_at).total_seconds()
    agent_id, tool = checkpoint.agent_id, checkpoint.tool or checkpoint.kind
    # The deciding transition read the agent with the checkpoint: no query then.
    known = checkpoint.agent.slug if Checkpoint.agent.is_cached(checkpoint) else None

    def observe() -> None:
        slug = known or Agent.objects.filter(pk=agent_id).values_list("slug", flat=True).first()
        TIME_TO_DECISION.labels(slug or "", tool).observe(seconds)

    transaction.on_commit(observe)
