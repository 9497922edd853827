"""Expiry sweep throughput: N overdue pending checkpoints (each on its own waiting run) expired
by `expire_overdue`, the code the schedule and `manage.py sweep` run. Checks exactly-once:
every checkpoint expired once, one audit event each, one resume requested per run, the audit
chain verifies. `--racers 2` runs two sweeps at once (two clusters).

    .venv/bin/python bench/sweep.py --checkpoints 10000
    .venv/bin/python bench/sweep.py --checkpoints 10000 --racers 2
    .venv/bin/python bench/sweep.py --database-url postgres://postgres@127.0.0.1:5432/DB
    .venv/bin/python bench/sweep.py --checkpoints 2000 --one-by-one   # the per-row path

Target: ≥ 1,000 checkpoints/s with exactly-once outcomes.
"""

from __future__ import annotations

import argparse
import threading
import time

from _setup import add_common, configure


def seed(n: int) -> None:
    """Bulk-insert waiting runs with one overdue pending checkpoint each (fixture data, so
    it skips the transitions; the sweep under test uses them)."""
    import datetime as dt
    import uuid

    from django.utils import timezone

    from agents.models import Agent, Run
    from approvals.models import Checkpoint

    agent = Agent.objects.create(slug="sweep-bench", name="sweep bench")
    now = timezone.now()
    runs = [
        Run(id=uuid.uuid4(), agent=agent, task=f"t{i}", status=Run.Status.WAITING) for i in range(n)
    ]
    Run.objects.bulk_create(runs, batch_size=2000)
    Checkpoint.objects.bulk_create(
        [
            Checkpoint(
                run=r,
                agent=agent,
                title=f"c{i}",
                action={"tool": "x", "args": {"i": i}},
                stages=[{"role": "ops", "approvals": 1}],
                current_role="ops",
                created_at=now - dt.timedelta(hours=1),
                deadline=now - dt.timedelta(seconds=1 + i % 600),
            )
            for i, r in enumerate(runs)
        ],
        batch_size=2000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--checkpoints", type=int, default=10_000)
    parser.add_argument("--racers", type=int, default=1, help="concurrent sweeps")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--one-by-one", action="store_true", help="the per-row fallback path")
    args = parser.parse_args()
    configure("sweep", args)

    from django.db import connection
    from django_q.conf import Conf
    from django_q.models import OrmQ

    from agents.models import Run
    from approvals.models import Checkpoint
    from approvals.sweeps import _one_by_one, expire_overdue
    from audit.events import verify_ledger
    from audit.models import AuditEvent

    Conf.SYNC = False  # enqueue resumes to the broker like production (nobody consumes them)
    print(f"seeding {args.checkpoints} overdue checkpoints ...", flush=True)
    seed(args.checkpoints)
    results: list[dict] = []

    def sweep() -> None:
        try:
            if args.one_by_one:
                counts = {"expired": 0, "escalated": 0, "lost_to_decision": 0}
                from django.utils import timezone

                while _one_by_one(timezone.now(), args.batch, counts) == args.batch:
                    pass
                results.append(counts)
            else:
                results.append(expire_overdue(batch=args.batch))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(args.racers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started

    expired = Checkpoint.objects.filter(status=Checkpoint.Status.EXPIRED).count()
    events = AuditEvent.objects.filter(verb="checkpoint.expired").count()
    requested = Run.objects.filter(resume_requested_at__isnull=False).count()
    enqueued = OrmQ.objects.count() if hasattr(OrmQ, "objects") else -1
    chain = verify_ledger()
    total = sum(r["expired"] for r in results)
    ok = (
        expired == events == requested == total == args.checkpoints
        and chain.ok
        and not Checkpoint.objects.filter(status=Checkpoint.Status.PENDING).exists()
    )
    mode = "one by one" if args.one_by_one else f"batches of {args.batch}"
    print(
        f"expiry sweep, {connection.vendor}, {mode}, {args.racers} sweep(s): "
        f"{args.checkpoints} checkpoints in {elapsed:.2f} s = "
        f"{args.checkpoints / elapsed:,.0f} checkpoints/s"
    )
    print(f"  per sweep: {results}")
    print(
        f"  expired {expired}, audit events {events}, resumes requested {requested}, "
        f"resume tasks enqueued {enqueued}, chain {'OK' if chain.ok else chain.problem} "
        f"({chain.checked} events) -> exactly once: {'yes' if ok else 'NO'}"
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
