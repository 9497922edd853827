"""GET /metrics: Prometheus text format, protected by a bearer token or an allow-listed
network (closed when neither is set), multi-process safe."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from approvals.transitions import checkpoint_decide
from hitlportal.sweeps import run_all
from tests.code import pythonpath
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_it_is_closed_unless_configured(client, settings):
    settings.HITL_METRICS_TOKEN = ""
    settings.HITL_METRICS_ALLOW = []
    assert client.get("/metrics").status_code == 404


def test_a_bearer_token_opens_it(client, settings):
    settings.HITL_METRICS_TOKEN = "s3cret-metrics-token"
    settings.HITL_METRICS_ALLOW = []
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert client.get("/metrics").headers["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_an_allow_listed_network_needs_no_token(client, settings):
    settings.HITL_METRICS_TOKEN = ""
    settings.HITL_METRICS_ALLOW = ["10.0.0.0/8", "not a network"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.7").status_code == 401


@pytest.mark.slow
def test_production_defaults_keep_it_closed():
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "HITL_METRICS_ALLOW")}
    env.update(DEBUG="0", SECRET_KEY="p" * 60, ALLOWED_HOSTS="hitl.example.com")
    env["HITL_ENCRYPTION_KEY"] = "ZmRhc2RmYXNkZmFzZGZhc2RmYXNkZmFzZGZhc2RmYXM="
    env["HITL_LEDGER_SIGNING_KEY"] = base64.b64encode(bytes(range(32))).decode()
    env["DJANGO_SETTINGS_MODULE"] = "hitlportal.settings"
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(repr(settings.HITL_METRICS_TOKEN), settings.HITL_METRICS_ALLOW)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.strip() == "'' []", result.stderr


def test_it_exposes_queue_decisions_sla_requests_sweeps_and_time_to_decision(
    client, settings, make_checkpoint, reviewer, django_capture_on_commit_callbacks
):
    settings.HITL_METRICS_ALLOW = ["127.0.0.1/32"]
    settings.HITL_METRICS_TOKEN = ""
    decided = make_checkpoint(title="one")
    make_checkpoint(title="two")
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint_decide(decided.pk, reviewer, "approve")
    run_all()
    client.get("/api/v1/health/")
    got = samples(client.get("/metrics").content.decode())
    assert got[("hitl_queue_depth", (("role", "ops"),))] == 1
    assert ("hitl_queue_oldest_pending_age_seconds", (("role", "ops"),)) in got
    assert got[("hitl_decisions_total", (("outcome", "approve"),))] == 1
    assert got[("hitl_decisions_total", (("outcome", "reject"),))] == 0
    assert got[("hitl_checkpoints_resolved_total", (("status", "approved"),))] == 1
    assert got[("hitl_sla_breaches_total", ())] == 0
    assert got[("hitl_webhook_deliveries", (("status", "pending"),))] == 0
    health = (
        "hitl_http_requests_total",
        (("method", "GET"), ("route", "api/v1/health/"), ("status", "200")),
    )
    assert got[health] >= 1
    ttd = ("hitl_time_to_decision_seconds_count", (("agent", "bot"), ("tool", "delete_files")))
    assert got[ttd] >= 1
    assert got[("hitl_sweep_runs_total", (("result", "ok"), ("sweep", "expiry")))] >= 1
    assert ("hitl_sweep_duration_seconds_count", (("sweep", "rollups"),)) in got


def test_sla_breaches_count_as_they_are_marked(client, settings, make_checkpoint, reviewer):
    """`hitl_sla_breaches` counts marked breaches: the sweep's, and a decision's that came
    after the SLA due time before any sweep did (the dashboard counts both)."""
    settings.HITL_METRICS_ALLOW = ["127.0.0.1/32"]
    settings.HITL_METRICS_TOKEN = ""
    PolicyFactory(name="deletes: ops within a minute", match_tool="delete_*", sla_seconds=60)
    t0 = timezone.now()

    def figures(after: float) -> tuple[float, float]:
        with time_machine.travel(t0 + dt.timedelta(seconds=after), tick=False):
            got = samples(client.get("/metrics").content.decode())
        return got[("hitl_sla_breaches_total", ())], got[("hitl_sla_breaching", ())]

    with time_machine.travel(t0, tick=False):
        in_time, late, waiting = (make_checkpoint(title=t) for t in ("in time", "late", "waits"))
    assert waiting.sla_due_at == t0 + dt.timedelta(seconds=60)
    with time_machine.travel(t0 + dt.timedelta(seconds=30), tick=False):
        checkpoint_decide(in_time.pk, reviewer, "approve")
    assert figures(30) == (0, 0)
    assert figures(61) == (0, 2)  # past due, not marked yet
    with time_machine.travel(t0 + dt.timedelta(seconds=61), tick=False):
        checkpoint_decide(late.pk, reviewer, "reject", comment="too late anyway")
    assert figures(61) == (1, 1)
    with time_machine.travel(t0 + dt.timedelta(seconds=62), tick=False):
        run_all()
    assert figures(62) == (2, 1)
    with time_machine.travel(t0 + dt.timedelta(seconds=63), tick=False):
        run_all()
    assert figures(63) == (2, 1)  # each breach counted once


@pytest.mark.slow
def test_it_adds_up_every_process_under_several_workers(client, settings, tmp_path, monkeypatch):
    """Two worker processes count into PROMETHEUS_MULTIPROC_DIR; /metrics reports the sum."""
    settings.HITL_METRICS_ALLOW = ["127.0.0.1/32"]
    code = (
        "import sys; from core.metrics import HTTP_REQUESTS, DELIVERY_ATTEMPTS; "
        "HTTP_REQUESTS.labels('api/v1/queue/', 'GET', '200').inc(int(sys.argv[1])); "
        "DELIVERY_ATTEMPTS.labels('webhook', 'delivered').inc()"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": pythonpath()}
    for n in ("3", "4"):
        subprocess.run([sys.executable, "-c", code, n], env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    got = samples(client.get("/metrics").content.decode())
    key = (
        "hitl_http_requests_total",
        (("method", "GET"), ("route", "api/v1/queue/"), ("status", "200")),
    )
    assert got[key] == 7
    assert (
        got[("hitl_delivery_attempts_total", (("kind", "webhook"), ("result", "delivered")))] == 2
    )
