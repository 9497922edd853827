"""Resume latency: decision commit → hosted run resumed (the resume task's first write, the
`run.resumed` audit event), one decision at a time, with a real qcluster subprocess.

    .venv/bin/python bench/resume.py --decisions 300                 # SQLite + ORM broker
    .venv/bin/python bench/resume.py --redis redis://127.0.0.1:6379/3  # SQLite + Redis broker
    .venv/bin/python bench/resume.py --database-url postgres://postgres@127.0.0.1:5432/DB

Targets: p50 ≤ 100 ms and p99 ≤ 250 ms with the ORM broker (poll 0.1); p99 ≤ 20 ms with Redis.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

from _setup import Cluster, add_common, configure, percentiles


def _stamp(into: list) -> None:
    from django.utils import timezone

    into.append(timezone.now())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--redis", default="", help="use the Redis broker at this URL")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time a no-op task (the broker's and worker's share)",
    )
    args = parser.parse_args()
    env = configure("resume", args)

    from django.db import transaction

    from agents.models import Agent, Run
    from agents.runtime.loop import drive
    from agents.transitions import run_start
    from approvals.transitions import checkpoint_decide
    from audit.events import Actor
    from audit.models import AuditEvent
    from tests.factories import UserFactory

    agent = Agent.objects.create(
        slug="bench", name="bench", kind=Agent.Kind.HOSTED, runtime="bench.bench_agents.BenchAgent"
    )
    reviewer = UserFactory(username="bench-reviewer", roles=["ops"])
    actor = Actor.system("bench")
    print(f"preparing {args.decisions} waiting runs ...", flush=True)
    checkpoints = []
    for i in range(args.decisions):
        run = run_start(agent=agent, task=f"bench {i}", input={"n": i}, actor=actor)
        drive(run.pk)  # inline, up to its checkpoint
        checkpoints.append(run.checkpoints.get())

    cluster = Cluster(env)
    try:
        cluster.wait_ready()
        latencies = []
        for cp in checkpoints:
            committed: list = []
            with transaction.atomic():
                # Registered first, so it runs right at commit, before the enqueue.
                transaction.on_commit(partial(_stamp, committed))
                checkpoint_decide(cp.pk, reviewer, "approve", channel="api")
            deadline = time.monotonic() + 10
            while True:
                at = (
                    AuditEvent.objects.filter(verb="run.resumed", target_id=str(cp.run_id))
                    .values_list("at", flat=True)
                    .first()
                )
                if at is not None:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {cp.run_id} was not resumed within 10 s")
                time.sleep(0.002)
            latencies.append((at - committed[0]).total_seconds() * 1000)
            # Let the run finish before the next decision: measure latency, not backlog.
            while not Run.objects.filter(pk=cp.run_id, status=Run.Status.COMPLETED).exists():
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {cp.run_id} did not complete")
                time.sleep(0.002)
        if args.baseline:
            baseline = _baseline(args.decisions)
    finally:
        cluster.stop()
    broker = "redis" if args.redis else f"orm (poll {args.poll})"
    from django.db import connection

    print(
        f"resume latency, {connection.vendor}, {broker} broker: {percentiles(latencies)}; "
        f"all {len(checkpoints)} runs completed"
    )
    if args.baseline:
        print(f"baseline, a no-op task, enqueue -> its first line: {percentiles(baseline)}")


def _baseline(n: int) -> list[float]:
    from django_q.models import Task
    from django_q.tasks import async_task

    out = []
    for _ in range(n):
        sent = time.time()
        task_id = async_task("bench.bench_agents.stamp")
        deadline = time.monotonic() + 10
        while True:
            row = Task.objects.filter(id=task_id).values_list("result", flat=True).first()
            if row is not None:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the baseline task did not run")
            time.sleep(0.002)
        out.append((row - sent) * 1000)
    return out


if __name__ == "__main__":
    main()
