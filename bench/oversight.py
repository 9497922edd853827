"""Benchmark: the managers' oversight pages at 100,000 checkpoints and 1,000,000 audit events.

    python bench/oversight.py                        # SQLite file under /tmp/hitl-bench-oversight
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench_oversight python bench/oversight.py

Prints the server-side time (in-process WSGI handler: middleware, session, auth, queries,
template) of the dashboard for a 7-day and a 90-day period, of the audit explorer's first
page (unfiltered and filtered), the throughput and memory of a streamed export of every audit
event, how long the rollups take to build and to refresh, and a full chain verification.

The database is created (or reused when it already holds the rows); it is NOT the dev or test
database. Rows are bulk-inserted, the audit events then sequenced into the ledger (a valid Merkle
log with signed heads): this measures reading them.
Targets: dashboard <= 300 ms, explorer first page <= 100 ms, export >= 20,000 events/s with
flat memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DEBUG", "1")  # dev static storage; DEBUG itself is switched off below
os.environ.setdefault("HITL_VAR_DIR", "/tmp/hitl-bench-oversight")
os.environ.setdefault("HITL_FAST_HASHER", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")

AGENTS = {
    "log-janitor": ["delete_files", "rotate_log"],
    "code-patcher": ["apply_patch"],
    "sql-patcher": ["sql_execute"],
    "mailer": ["send_email"],
    "deployer": ["deploy", "rollback"],
    "billing": ["refund"],
    "support": [""],  # questions
}
ROLES = {"delete_files": "ops", "rotate_log": "ops", "apply_patch": "code-review",
         "sql_execute": "dba", "send_email": "ops", "deploy": "ops", "rollback": "ops",
         "refund": "finance", "": "ops"}  # fmt: skip
SLA = {"ops": 900, "code-review": 2400, "dba": 1800, "finance": 3600}


def setup(checkpoints: int, events: int) -> None:
    import django

    from bench._setup import ensure_postgres_database

    ensure_postgres_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    from approvals.models import Checkpoint
    from audit.models import AuditEvent

    if Checkpoint.objects.count() >= checkpoints and AuditEvent.objects.count() >= events:
        print(
            f"reusing {Checkpoint.objects.count()} checkpoints, {AuditEvent.objects.count()} events"
        )
    else:
        _fill(checkpoints, events)
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    else:
        from hitlportal.dbmaint import analyze

        analyze()


def _fill(n: int, n_events: int) -> None:
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django.utils import timezone

    from agents.models import Agent, Run
    from approvals.models import Checkpoint, CheckpointView, Decision, Policy
    from audit.models import AuditEvent
    from tests.factories import UserFactory

    started = time.perf_counter()
    rnd = random.Random(42)
    now = timezone.now()
    for role in [*SLA, "managers"]:
        Group.objects.get_or_create(name=role)
    UserFactory(username="bench-manager", roles=["managers"])
    reviewers = {
        role: [UserFactory(username=f"{role}-{i}", roles=[role]) for i in range(4)] for role in SLA
    }
    policies = {
        role: Policy.objects.get_or_create(
            name=f"bench: {role}",
            defaults={"stages": [{"role": role, "approvals": 1}], "sla_seconds": sla},
        )[0]
        for role, sla in SLA.items()
    }
    agents = {
        slug: Agent.objects.get_or_create(slug=slug, defaults={"name": slug})[0] for slug in AGENTS
    }
    with transaction.atomic():
        runs = Run.objects.bulk_create(
            [
                Run(agent=a, task="bench", status="completed")
                for a in agents.values()
                for _ in range(300)
            ]
        )
    runs_by_agent: dict[int, list[Run]] = {}
    for run in runs:
        runs_by_agent.setdefault(run.agent_id, []).append(run)
    outcomes = ["approved"] * 80 + ["rejected"] * 10 + ["expired"] * 5 + ["cancelled"] * 3
    rows, decisions, views = [], [], []
    for i in range(n):
        slug = rnd.choice(list(AGENTS))
        tool = rnd.choice(AGENTS[slug])
        role = ROLES[tool]
        created = now - dt.timedelta(seconds=rnd.uniform(0, 90 * 86400))
        took = dt.timedelta(seconds=rnd.lognormvariate(5.5, 1.0))
        status = "pending" if created + took > now or rnd.random() < 0.002 else rnd.choice(outcomes)
        resolved = created + took if status != "pending" else None
        cp = Checkpoint(
            run=rnd.choice(runs_by_agent[agents[slug].pk]),
            agent=agents[slug],
            kind="approval" if tool else "question",
            title=f"bench {i}",
            action={"tool": tool, "args": {"i": i}} if tool else {},
            tool=tool,
            risk=rnd.choice(["low", "medium", "high", "critical"]),
            status=status,
            policy=policies[role],
            stages=[{"role": role, "approvals": 1}],
            current_role=role,
            deadline=created + dt.timedelta(hours=4),
            sla_seconds=SLA[role],
            sla_due_at=created + dt.timedelta(seconds=SLA[role]),
            sla_breached_at=(
                created + dt.timedelta(seconds=SLA[role])
                if (resolved or now) > created + dt.timedelta(seconds=SLA[role])
                else None
            ),
            escalated=rnd.random() < 0.02,
            resolved_at=resolved,
            resumed_at=(
                resolved + dt.timedelta(seconds=rnd.uniform(0.5, 30))
                if status in ("approved", "rejected")
                else None
            ),
            created_at=created,
        )
        rows.append(cp)
        if status in ("approved", "rejected"):
            who = rnd.choice(reviewers[role])
            decisions.append(
                Decision(checkpoint=cp, reviewer=who, role=role,
                         outcome="approve" if status == "approved" else "reject",
                         comment="" if status == "approved" else "no", created_at=resolved)
            )  # fmt: skip
            views.append(
                CheckpointView(checkpoint=cp, user=who, at=resolved - took * rnd.uniform(0.1, 0.9))
            )
    with transaction.atomic():
        Checkpoint.objects.bulk_create(rows, batch_size=2000)
        Decision.objects.bulk_create(decisions, batch_size=5000)
        CheckpointView.objects.bulk_create(views, batch_size=5000)
    for cp in rows:  # updated_at is auto_now: the bulk insert stamped "now"
        cp.updated_at = cp.resolved_at or cp.created_at
    Checkpoint.objects.bulk_update(rows, ["updated_at"], batch_size=5000)
    took = time.perf_counter() - started
    print(f"inserted {n} checkpoints, {len(decisions)} decisions in {took:.0f} s")

    started = time.perf_counter()
    verbs = ["checkpoint.requested", "checkpoint.viewed", "checkpoint.claimed",
             "decision.recorded", "checkpoint.approved", "run.resumed"]  # fmt: skip
    users = [u for rs in reviewers.values() for u in rs]
    t0 = now - dt.timedelta(days=90)
    step = dt.timedelta(days=90) / n_events
    batch = []
    for i in range(n_events):
        cp = rows[i % n]
        actor = rnd.choice(users)
        fields = {
            "at": t0 + step * i, "actor_type": "user", "actor_id": str(actor.pk),
            "actor_label": actor.username, "verb": verbs[i % len(verbs)],
            "target_type": "approvals.checkpoint", "target_id": str(cp.pk),
            "data": {"n": i, "role": cp.current_role},
        }  # fmt: skip
        batch.append(AuditEvent(**fields))  # unsequenced: the ledger's sequencer logs them
        if len(batch) == 10_000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    if batch:
        AuditEvent.objects.bulk_create(batch)
    print(f"inserted {n_events} audit events in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    from core.ledger.sequencer import sequence_pending

    logged = sequence_pending()
    print(f"sequenced {logged} events into the ledger in {time.perf_counter() - started:.0f} s")


def timed(client, url: str, n: int, *, cold: bool = False) -> list[float]:
    """Server time of `n` requests. `cold`: the dashboard's rolled-up figures are dropped from
    the cache before each one, as after every refresh of the rollups (once a minute)."""
    from django.core.cache import cache

    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    out = []
    for _ in range(n):
        if cold:
            cache.clear()
        t0 = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()
    setup(args.checkpoints, args.events)

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from approvals.models import Checkpoint
    from audit import events as audit
    from audit.models import AuditEvent
    from oversight import analytics as metrics
    from oversight.models import OversightRollup

    settings.DEBUG = False
    print(
        f"database: {connection.vendor}; {Checkpoint.objects.count()} checkpoints, "
        f"{AuditEvent.objects.count()} audit events"
    )
    t0 = time.perf_counter()
    full = metrics.refresh_rollups(full=True)
    print(
        f"rollups, full build: {time.perf_counter() - t0:.1f} s ({full['days']} days, "
        f"{OversightRollup.objects.count()} rows)"
    )
    some = list(Checkpoint.objects.filter(status="pending")[:20])
    from django.utils import timezone

    Checkpoint.objects.filter(pk__in=[c.pk for c in some]).update(
        escalated=True, updated_at=timezone.now()
    )
    t0 = time.perf_counter()
    again = metrics.refresh_rollups()
    print(
        f"rollups, refresh after 20 changes: {(time.perf_counter() - t0) * 1000:.0f} ms ({again})"
    )

    manager = get_user_model().objects.get(username="bench-manager")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(manager, backend="django.contrib.auth.backends.ModelBackend")
    sample = AuditEvent.objects.order_by("-id").values_list("target_id", flat=True).first()
    board = "/admin/oversight/?period="
    cases = [
        ("dashboard, 7 days, first view after a rollup refresh", f"{board}7 cold"),
        ("dashboard, 7 days, again", f"{board}7"),
        ("dashboard, 90 days, first view after a rollup refresh", f"{board}90 cold"),
        ("dashboard, 90 days, again", f"{board}90"),
        ("dashboard, 90 days, one agent, first view", f"{board}90&agent=sql-patcher cold"),
        ("audit explorer, first page", "/admin/oversight/audit/"),
        ("audit explorer, one actor", "/admin/oversight/audit/?actor=dba-1"),
        ("audit explorer, one verb", "/admin/oversight/audit/?verb=decision.recorded"),
        ("audit explorer, one checkpoint", f"/admin/oversight/audit/?target={sample}"),
        ("audit explorer, a past day", "/admin/oversight/audit/?start=" + str(
            dt.date.today() - dt.timedelta(days=45)) + "&end=" + str(
            dt.date.today() - dt.timedelta(days=45))),
        ("reviewers, 30 days", "/admin/oversight/reviewers/?period=30"),
    ]  # fmt: skip
    print("\n| page | p50 | p90 | max |\n|---|---|---|---|")
    for name, url in cases:
        url, _, cold = url.partition(" ")
        times = timed(client, url, args.requests, cold=bool(cold))
        print(
            f"| {name} | {pct(times, 50):.0f} ms | {pct(times, 90):.0f} ms | {max(times):.0f} ms |"
        )

    print()
    for fmt in ("jsonl", "csv"):
        before = rss_mb()
        peak = before
        t0 = time.perf_counter()
        response = client.get(f"/admin/oversight/export/audit.{fmt}")
        size = rows = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            rows += chunk.count(b"\n")
            if rows % 100_000 < 600:
                peak = max(peak, rss_mb())
        took = time.perf_counter() - t0
        print(
            f"export audit.{fmt}: {rows:,} lines, {size / 2**20:.0f} MiB in {took:.1f} s = "
            f"{rows / took:,.0f} events/s; RSS {before:.0f} MiB before, peak {peak:.0f} MiB"
        )
    if not args.skip_verify:
        t0 = time.perf_counter()
        result = audit.verify_ledger()
        took = time.perf_counter() - t0
        print(f"verify_ledger: {result.ok}, {result.checked:,} events in {took:.1f} s "
              f"({result.checked / took:,.0f}/s)")  # fmt: skip


if __name__ == "__main__":
    main()
