"""Policy engine: routing + condition evaluation with 1,000 live policies, and replay of a
draft against 100,000 past checkpoints.

    .venv/bin/python bench/policies.py                      # both, SQLite under var/bench/
    .venv/bin/python bench/policies.py --part route --indexed 0   # no shorthands: worst case
    .venv/bin/python bench/policies.py --database-url postgres://postgres@127.0.0.1:5432/DB

Routing: 1,000 published policies (by default 900 with an exact `match_tool` and a CEL
condition over the arguments, 100 with a condition only, which every request must evaluate,
plus one deny rule), compiled once (the cold figure), then `policies.route` for N requests
of varied tools, agents and arguments, each with its own `Facts` (the activation): what
`checkpoint_request` pays, including the one-row generation check against the database.
Target: ≤ 1 ms per request.

Replay: N checkpoints (bulk-inserted fixture rows with varied tools, arguments, statuses and
artifacts), then `replay.replay` of an auto-approve draft over the last 30 days.
Target: 100,000 checkpoints in ≤ 10 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from _setup import add_common, configure

CONDITION = 'size(args.paths) <= 20 && args.paths.all(p, p.startsWith("/var/log/"))'


def make_policies(total: int, indexed: int) -> None:
    from django.contrib.auth.models import Group, Permission

    from approvals.models import Policy
    from approvals.policies import policy_publish, policy_save
    from audit.events import Actor

    decide = Permission.objects.get(codename="decide_checkpoint")
    for name in ("ops", "dba"):
        Group.objects.get_or_create(name=name)[0].permissions.add(decide)
    actor = Actor.system("bench")

    def add(**fields) -> None:
        policy = Policy(**{"stages": [{"role": "ops", "approvals": 1}], **fields})
        policy_save(policy, actor=actor)
        policy_publish(policy, user=None, actor=actor)

    add(
        name="deny drop table",
        priority=1,
        match_tool="sql",
        condition='has(args.sql) && args.sql.lowerAscii().contains("drop table")',
        outcome="auto_reject",
        reason="no",
    )
    for i in range(total - 1):
        if i < indexed:
            add(
                name=f"tool {i}",
                priority=10 + i,
                match_tool=f"tool_{i}",
                condition=CONDITION,
                outcome="auto_approve" if i % 2 else "route",
                stages=[{"role": "dba" if i % 3 else "ops", "approvals": 1}],
            )
        else:
            add(
                name=f"agent rule {i}",
                priority=10 + i,
                condition=f'agent == "agent-{i}" && has(args.n) && args.n > {i % 50}',
                stages=[{"role": "dba", "approvals": 1}],
            )


def bench_route(args) -> None:
    from django.db import connection
    from django.utils import timezone

    from approvals import policies
    from approvals.policies.conditions import request_facts

    started = time.perf_counter()
    make_policies(args.policies, args.indexed)
    print(
        f"created and published {args.policies} policies in {time.perf_counter() - started:.1f} s"
    )
    t = time.perf_counter()
    table = policies.routing_table()
    cold = time.perf_counter() - t
    print(f"  compile the routing table (cold, once per publication): {cold * 1000:.0f} ms, "
          f"{table.size} live policies")  # fmt: skip

    rng = random.Random(7)
    requests = []
    for i in range(args.requests):
        tool = f"tool_{rng.randrange(args.policies)}" if i % 4 else rng.choice(["sql", "other"])
        paths = [f"/var/log/{j}.log" for j in range(rng.randrange(1, 30))]
        if i % 7 == 0:
            paths.append("/etc/passwd")
        args_ = {"paths": paths, "n": rng.randrange(100), "sql": "select 1"}
        requests.append((f"agent-{rng.randrange(1200)}", tool, args_))
    outcomes: dict[str, int] = {}
    timings = []
    for agent, tool, args_ in requests:
        t = time.perf_counter()
        now = timezone.now()
        facts = request_facts(
            agent_slug=agent, action={"tool": tool, "args": args_}, kind="approval",
            risk="medium", now=now,
        )  # fmt: skip
        route = policies.route(
            agent_slug=agent, tool=tool, kind="approval", risk="medium", facts=facts, now=now
        )
        timings.append((time.perf_counter() - t) * 1e6)
        outcomes[route.outcome] = outcomes.get(route.outcome, 0) + 1
    timings.sort()

    def pct(p: float) -> float:
        return timings[min(len(timings) - 1, round(p / 100 * (len(timings) - 1)))]

    print(
        f"routing, {connection.vendor}, {args.policies} live policies "
        f"({args.indexed} with an exact tool): {len(timings)} requests, "
        f"p50 {pct(50):.0f} µs, p90 {pct(90):.0f} µs, p99 {pct(99):.0f} µs, "
        f"mean {statistics.mean(timings):.0f} µs; outcomes {outcomes}"
    )
    # The same without the database round trip (the generation check): condition evaluation
    # and candidate selection alone.
    table = policies.routing_table()
    now = timezone.now()
    t = time.perf_counter()
    for agent, tool, args_ in requests:
        facts = request_facts(
            agent_slug=agent, action={"tool": tool, "args": args_}, kind="approval",
            risk="medium", now=now,
        )  # fmt: skip
        table.decide(agent=agent, tool=tool, kind="approval", risk="medium", facts=facts, now=now)
    per = (time.perf_counter() - t) / len(requests) * 1e6
    print(f"  evaluation alone (table in hand, no generation check): {per:.0f} µs per request")


def seed_history(n: int) -> None:
    import datetime as dt
    import uuid

    from django.utils import timezone

    from agents.models import Agent, Run
    from approvals.models import Artifact, Checkpoint

    agents = [Agent.objects.create(slug=f"hist-{i}", name=f"hist {i}") for i in range(5)]
    now = timezone.now()
    rng = random.Random(11)
    statuses = ["approved", "approved", "approved", "rejected", "expired", "pending"]
    batch = 5000
    for start in range(0, n, batch):
        runs, cps, artifacts = [], [], []
        for i in range(start, min(n, start + batch)):
            agent = agents[i % 5]
            run = Run(id=uuid.uuid4(), agent=agent, task="t", status=Run.Status.COMPLETED)
            runs.append(run)
            paths = [f"/var/log/{j}.log" for j in range(rng.randrange(1, 25))]
            if i % 9 == 0:
                paths.append("/etc/hosts")
            tool = rng.choice(["delete_files", "delete_files", "restart", "sql"])
            action = {"tool": tool, "args": {"paths": paths, "n": i % 100}}
            status = statuses[i % len(statuses)]
            edited = status == "approved" and i % 13 == 0
            final = {"tool": tool, "args": {"paths": paths[:1]}} if edited else action
            created = now - dt.timedelta(seconds=rng.randrange(29 * 86400))
            cp = Checkpoint(
                id=uuid.uuid4(), run=run, agent=agent, title=f"c{i}", action=action,
                risk=rng.choice(["low", "medium", "high"]), status=status,
                confidence=rng.random() if i % 2 else None,
                stages=[{"role": "ops", "approvals": 1}], current_role="ops",
                created_at=created, deadline=created + dt.timedelta(hours=1),
                final_action=final if status == "approved" else None,
            )  # fmt: skip
            cps.append(cp)
            if i % 5 == 0:
                artifacts.append(
                    Artifact(checkpoint=cp, name="plan.diff", kind="diff", size=i % 5000,
                             sha256="0" * 64, inline="x")
                )  # fmt: skip
        Run.objects.bulk_create(runs)
        Checkpoint.objects.bulk_create(cps)
        Artifact.objects.bulk_create(artifacts)


def bench_replay(args) -> None:
    from django.db import connection

    from approvals.models import Policy
    from approvals.policies import policy_save
    from approvals.policies.replay import replay
    from audit.events import Actor

    t = time.perf_counter()
    seed_history(args.checkpoints)
    print(f"seeded {args.checkpoints} checkpoints in {time.perf_counter() - t:.1f} s")
    draft = Policy(
        name="replayed draft",
        match_tool="delete_files",
        condition='size(args.paths) <= 20 && args.paths.all(p, p.startsWith("/var/log/")) '
        "&& (confidence == null || confidence > 0.2)",
        outcome="auto_approve",
        stages=[],
    )
    policy_save(draft, actor=Actor.system("bench"))
    version = draft.versions.get()
    for attempt in range(args.rounds):
        cpu = time.process_time()
        result = replay(version, days=30, limit=max(args.checkpoints, 1))
        cpu = time.process_time() - cpu
        print(
            f"replay, {connection.vendor}, round {attempt + 1}: {result.checkpoints} checkpoints "
            f"in {result.seconds:.2f} s ({cpu:.2f} s CPU in this process) — matched "
            f"{result.matched}, would approve {result.would_approve}, routed differently "
            f"{result.routed_differently}, "
            f"unsafe (a person rejected or edited) {result.unsafe_count}, verdicts "
            f"{dict(result.verdicts)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--part", choices=["route", "replay", "all"], default="all")
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--indexed", type=int, default=900, help="policies with an exact tool")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--checkpoints", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    configure("policies", args)
    if args.part in ("route", "all"):
        bench_route(args)
    if args.part in ("replay", "all"):
        bench_replay(args)


if __name__ == "__main__":
    main()
