"""Benchmark: the reviewer queue (first page of the checkpoint changelist) with 100,000
pending checkpoints. Prints server-side time per request (in-process WSGI handler: routing,
middleware, session, auth, queries, template) as p50/p95/p99, and the SQL query count.

    python bench/review_queue.py                       # SQLite file under /tmp/hitl-bench-queue
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench_queue python bench/review_queue.py

The database is created (or reused when it already holds the rows) and is NOT the dev or
test database. Rows are bulk-inserted: this measures reading the queue, not creating it.
Target: p50 <= 50 ms for the first page.
"""

from __future__ import annotations

import sys

# This file is named like the stdlib's `queue`; drop its directory from the import path
# before anything (asgiref, logging) imports the real one.
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DEBUG", "1")  # dev static storage; DEBUG itself is switched off below
os.environ.setdefault("HITL_VAR_DIR", "/tmp/hitl-bench-queue")
os.environ.setdefault("HITL_FAST_HASHER", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")

ROLES = ["ops", "dba", "code-review"]


def setup(rows: int) -> None:
    import django

    from bench._setup import ensure_postgres_database

    ensure_postgres_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    from approvals.models import Checkpoint

    have = Checkpoint.objects.filter(status="pending").count()
    if have >= rows:
        print(f"reusing {have} pending checkpoints")
    else:
        _fill(rows - have)
    # Planner statistics, as production has them: on SQLite what the hourly
    # `hitl-db-analyze` schedule does; on PostgreSQL what autovacuum does shortly after a
    # bulk load (VACUUM also fills the visibility map that index-only scans need).
    from django.db import connection

    from hitlportal.dbmaint import analyze

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE approvals_checkpoint")
        print("statistics: VACUUM ANALYZE approvals_checkpoint")
    else:
        print(f"statistics: {analyze()}")


def _fill(missing: int) -> None:
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django.utils import timezone

    from agents.models import Agent, Run
    from approvals.models import Checkpoint
    from tests.factories import UserFactory

    for role in [*ROLES, "managers"]:
        Group.objects.get_or_create(name=role)
    UserFactory(username="bench-reviewer", roles=["ops"])
    UserFactory(username="bench-manager", roles=["managers"])
    agents = [
        Agent.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})[0]
        for i in range(8)
    ]
    rnd = random.Random(42)
    now = timezone.now()
    started = time.perf_counter()
    batch = 5000
    with transaction.atomic():
        runs = Run.objects.bulk_create(
            [
                Run(agent=agents[i % len(agents)], task=f"bench run {i}", status="waiting")
                for i in range(2000)
            ]
        )
    for start in range(0, missing, batch):
        items = []
        for i in range(start, min(start + batch, missing)):
            run = runs[i % len(runs)]
            role = ROLES[i % len(ROLES)]
            created = now - dt.timedelta(seconds=rnd.randint(0, 86400))
            items.append(
                Checkpoint(
                    run=run,
                    agent_id=run.agent_id,
                    kind=rnd.choice(["approval"] * 8 + ["review", "question"]),
                    title=f"Bench checkpoint {i}: delete {rnd.randint(1, 99)} files",
                    action={"tool": "delete_files", "args": {"paths": [f"/tmp/{i}.log"]}},
                    risk=rnd.choice(["low", "medium", "high", "critical"]),
                    stages=[{"role": role, "approvals": 1}],
                    current_role=role,
                    deadline=now + dt.timedelta(seconds=rnd.randint(60, 7 * 86400)),
                    created_at=created,
                )
            )
        with transaction.atomic():
            Checkpoint.objects.bulk_create(items)
    print(f"inserted {missing} pending checkpoints in {time.perf_counter() - started:.1f} s")


def measure(client, url: str, n: int) -> tuple[list[float], int]:
    from django.db import connection

    for _ in range(5):  # warm caches, template loader, query plans
        assert client.get(url).status_code == 200, url
    queries: list[str] = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(url)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200
    return times, len(queries)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    setup(args.rows)

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from approvals.models import Checkpoint

    settings.DEBUG = False  # no query log bookkeeping in the timed requests
    User = get_user_model()
    clients = {}
    for name in ("bench-reviewer", "bench-manager"):
        c = Client(HTTP_HOST="127.0.0.1")
        c.force_login(
            User.objects.get(username=name), backend="django.contrib.auth.backends.ModelBackend"
        )
        clients[name] = c
    pending = Checkpoint.objects.filter(status="pending").count()
    sample = Checkpoint.objects.filter(status="pending", current_role="ops").first()
    print(
        f"database: {connection.vendor}, pending checkpoints: {pending}, "
        f"requests per case: {args.requests}"
    )
    cases = [
        (
            "queue, reviewer (1 role, ~1/3 of rows)",
            "bench-reviewer",
            "/admin/approvals/checkpoint/",
        ),
        ("queue, manager (all rows)", "bench-manager", "/admin/approvals/checkpoint/"),
        (
            "queue, reviewer, risk=high filter",
            "bench-reviewer",
            "/admin/approvals/checkpoint/?risk=high",
        ),
        ("queue, reviewer, search 'files'", "bench-reviewer", "/admin/approvals/checkpoint/?q=77"),
        ("queue page 2, reviewer", "bench-reviewer", "/admin/approvals/checkpoint/?p=2"),
        ("home (counts), reviewer", "bench-reviewer", "/admin/"),
        ("poll fingerprint", "bench-reviewer", "/admin/approvals/checkpoint/poll/"),
        ("review page", "bench-reviewer", f"/admin/approvals/checkpoint/{sample.pk}/review/"),
    ]
    print(f"{'case':45} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'queries':>8}")
    for label, user, url in cases:
        times, queries = measure(clients[user], url, args.requests)
        print(
            f"{label:45} {statistics.median(times):8.1f} {pct(times, 95):8.1f} "
            f"{pct(times, 99):8.1f} {queries:8d}"
        )


if __name__ == "__main__":
    main()
