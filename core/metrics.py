"""Prometheus instruments counted inside the processes (web workers, task clusters), with the
maintained `prometheus-client`.

Multi-process safe: when `PROMETHEUS_MULTIPROC_DIR` names a directory (the same, emptied at
start, for every web worker and cluster process of a machine), each process writes its
samples to its own files there and `/metrics` adds them up (`api.metrics`). Without it (one
process, tests) they live in the process's default registry.

Figures that the rows already hold (queue depth, decisions by outcome, SLA breaches,
deliveries by state) are not counted here: `api.metrics` reads them from the database at
scrape time, so they are right across every process and machine.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Time to a human decision, in seconds: from half a minute to a day and beyond.
DECISION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)

HTTP_REQUESTS = Counter(
    "hitl_http_requests_total",
    "HTTP requests answered, by route (the URL pattern), method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "hitl_http_request_duration_seconds",
    "Time to answer HTTP requests, by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TIME_TO_DECISION = Histogram(
    "hitl_time_to_decision_seconds",
    "From the request to the human decision that resolved it, by agent and tool.",
    ["agent", "tool"],
    buckets=DECISION_BUCKETS,
)
SWEEP_RUNS = Counter(
    "hitl_sweep_runs_total", "Sweep runs, by sweep and result (ok, error).", ["sweep", "result"]
)
SWEEP_DURATION = Histogram(
    "hitl_sweep_duration_seconds",
    "Duration of each sweep run.",
    ["sweep"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DELIVERY_ATTEMPTS = Counter(
    "hitl_delivery_attempts_total",
    "Outbox delivery attempts (webhooks, notifications, witnesses), by kind and result "
    "(delivered, retry, failed).",
    ["kind", "result"],
)
