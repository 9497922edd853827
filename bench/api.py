"""API benchmark: the portal as in production (uvicorn serving hitlportal.asgi, PostgreSQL
when DATABASE_URL is set, else SQLite), loaded from this process. Prints, in one run:

  1. GET /api/v1/health/ at N concurrent clients: the framework ceiling (req/s, p50, p99)
  2. POST /api/v1/checkpoints/ at N clients: auth, throttle, idempotency record, routing,
     checkpoint + run waiting + two audit events, full response (req/s, p50, p99)
  3. decision commit (in this process, through checkpoint_decide) → GET .../wait returns
     (p50, p99), with the waiter already parked on the server
  4. RSS and thread count of one server process holding W concurrent long-poll waiters

    .venv/bin/python bench/api.py                                   # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/api.py

The PostgreSQL run uses its own database (`hitl_bench_api`, recreated each run) on the server
DATABASE_URL points at. Ports 8180-8181.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _http import Connection  # noqa: E402

from tests import servers  # noqa: E402

BENCH_DB = "hitl_bench_api"


def configure_environment(async_commit: bool = False) -> str:
    """Environment for this process and the servers: production settings, bench database."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        import psycopg

        parsed = urlparse(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
            if async_commit:  # diagnostic only: shows what the WAL flush per commit costs
                conn.execute(f"ALTER DATABASE {BENCH_DB} SET synchronous_commit = off")
        os.environ["DATABASE_URL"] = urlunparse(parsed._replace(path=f"/{BENCH_DB}"))
        os.environ.setdefault("DB_POOL", "1")  # see README, Production
        label = f"PostgreSQL ({parsed.hostname}), DB_POOL={os.environ['DB_POOL']}" + (
            ", synchronous_commit=off (diagnostic)" if async_commit else ""
        )
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["HITL_VAR_DIR"] = tempfile.mkdtemp(prefix="hitl-bench-")
        label = "SQLite (WAL)"
    os.environ.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        LOG_LEVEL="WARNING",
        # Throttling stays on (it is part of every request) but high enough not to trigger.
        HITL_API_THROTTLE_AGENT="1000000/m",
        DJANGO_SETTINGS_MODULE="hitlportal.settings",
    )
    return label


def setup_data(clients: int) -> tuple[list[tuple[str, str]], object]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    from django.contrib.auth.models import Group, User

    from agents.models import Agent
    from agents.services import AGENT_KEYS
    from agents.transitions import run_start
    from approvals.audit import Actor

    actor = Actor.system("bench")
    pairs = []
    for i in range(clients):
        agent = Agent.objects.create(slug=f"bench-{i}", name=f"Bench {i}")
        key = AGENT_KEYS.create(agent, actor)
        run = run_start(agent=agent, task="bench", actor=actor)
        pairs.append((key, str(run.pk)))
    reviewer = User.objects.create_user("bench-reviewer", password=secrets.token_urlsafe())
    reviewer.groups.add(Group.objects.get_or_create(name="ops")[0])
    return pairs, reviewer


class Server:
    def __init__(self, port: int, workers: int):
        self.port = port
        self.proc = servers.start_uvicorn(
            port, os.environ.copy(), "--workers", str(workers), "--backlog", "8192"
        )
        servers.wait_healthy(self.proc, port)

    def stop(self) -> None:
        servers.stop(self.proc, timeout=15)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def load(port: int, clients: int, duration: float, make_request) -> dict:
    """`clients` connections, each sending back-to-back for `duration` s (after a 2 s
    warm-up whose requests are not counted)."""
    latencies: list[float] = []
    errors: dict[int, int] = {}
    start = time.perf_counter()
    warm_end, end = start + 2, start + 2 + duration

    async def client(i: int) -> None:
        conn = await Connection("127.0.0.1", port).open()
        n = 0
        try:
            while (now := time.perf_counter()) < end:
                method, path, headers, body = make_request(i, n)
                t0 = time.perf_counter()
                status, _ = await conn.request(method, path, headers, body)
                t1 = time.perf_counter()
                n += 1
                if now >= warm_end:
                    if 200 <= status < 300:
                        latencies.append(t1 - t0)
                    else:
                        errors[status] = errors.get(status, 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return {
        "rps": len(latencies) / duration,
        "p50": pct(latencies, 50) * 1000,
        "p99": pct(latencies, 99) * 1000,
        "ok": len(latencies),
        "errors": errors,
    }


async def wait_latency(port: int, key: str, run_id: str, reviewer, samples: int) -> dict:
    from asgiref.sync import sync_to_async

    from agents import services
    from agents.models import Run
    from approvals.audit import Actor
    from approvals.transitions import checkpoint_decide

    run = await sync_to_async(Run.objects.select_related("agent").get)(pk=run_id)

    def ask():
        (cp,) = services.ask(
            run,
            [services.Ask(title="latency", action={"tool": "t", "args": {}})],
            actor=Actor.for_agent(run.agent),
        )
        return str(cp.pk)

    def decide(cp_id: str) -> float:
        checkpoint_decide(cp_id, reviewer, "approve")
        return time.perf_counter()  # checkpoint_decide returns after COMMIT

    conn = await Connection("127.0.0.1", port).open()
    latencies = []
    for _ in range(samples):
        cp_id = await sync_to_async(ask)()
        await conn.send(
            "GET",
            f"/api/v1/checkpoints/{cp_id}/wait?timeout=30",
            {"Authorization": f"Bearer {key}"},
        )
        await asyncio.sleep(0.05)  # the waiter is parked on the server
        committed = await sync_to_async(decide)(cp_id)
        status, body = await conn.receive()
        done = time.perf_counter()
        assert status == 200 and b'"approved"' in body, (status, body[:200])
        latencies.append(done - committed)
    conn.close()
    return {
        "p50": pct(latencies, 50) * 1000,
        "p99": pct(latencies, 99) * 1000,
        "max": max(latencies) * 1000,
        "n": len(latencies),
    }


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


async def waiters_memory(port: int, pid: int, key: str, ids: list[str], counts: list[int]):
    results = []
    conns: list[Connection] = []
    base = proc_status(pid)
    results.append((0, base["VmRSS"] / 1024, base["Threads"]))
    for target in counts:
        while len(conns) < target:
            size = min(target, len(conns) + 500) - len(conns)
            batch = [Connection("127.0.0.1", port) for _ in range(size)]
            await asyncio.gather(*(c.open() for c in batch))
            for c, cp_id in zip(batch, ids[len(conns) :], strict=False):
                await c.send(
                    "GET",
                    f"/api/v1/checkpoints/{cp_id}/wait?timeout=60",
                    {"Authorization": f"Bearer {key}"},
                )
            conns += batch
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # every waiter authenticated, read its checkpoint and parked
        early = 0  # a waiter that already got an answer was refused (401/429/...), not parked
        for c in conns[:: max(1, len(conns) // 50)]:
            try:
                await asyncio.wait_for(c.receive(), 0.01)
                early += 1
            except TimeoutError:
                pass
        assert early == 0, f"{early} sampled waiters were answered instead of parked"
        status = proc_status(pid)
        results.append((target, status["VmRSS"] / 1024, status["Threads"]))
    for c in conns:
        c.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers for 1-3")
    parser.add_argument("--samples", type=int, default=200, help="decision → wait samples")
    parser.add_argument("--waiters", default="2000,5000", help="waiter counts for 4")
    parser.add_argument("--port", type=int, default=8180)
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="diagnostic: PostgreSQL synchronous_commit=off for the bench DB",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets

    label = configure_environment(args.async_commit)
    pairs, reviewer = setup_data(args.clients)
    print(
        f"database: {label}; server: uvicorn --workers {args.workers}; "
        f"{args.clients} clients; {os.cpu_count()} CPUs",
        flush=True,
    )

    server = Server(args.port, args.workers)
    try:
        health = asyncio.run(
            load(
                args.port,
                args.clients,
                args.duration,
                lambda i, n: ("GET", "/api/v1/health/", None, None),
            )
        )
        print(
            f"GET /health/          {health['rps']:7.0f} req/s  p50 {health['p50']:5.1f} ms  "
            f"p99 {health['p99']:5.1f} ms  errors {health['errors']}",
            flush=True,
        )

        def create(i: int, n: int):
            key, run_id = pairs[i]
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}
            body = {
                "run": run_id,
                "title": f"Delete batch {n}",
                "risk": "high",
                "action": {"tool": "delete_files", "args": {"paths": [f"/tmp/{n}.log"]}},
                "context": {"reasoning": ["disk is full", "these are oldest"]},
            }
            return "POST", "/api/v1/checkpoints/", headers, body

        created = asyncio.run(load(args.port, args.clients, args.duration, create))
        ratio = created["rps"] / health["rps"] if health["rps"] else 0
        print(
            f"POST /checkpoints/    {created['rps']:7.0f} req/s  p50 {created['p50']:5.1f} ms  "
            f"p99 {created['p99']:5.1f} ms  errors {created['errors']}  "
            f"({ratio:.2f}x health)",
            flush=True,
        )

        latency = asyncio.run(wait_latency(args.port, *pairs[0], reviewer, args.samples))
        print(
            f"decision → wait       p50 {latency['p50']:5.1f} ms  p99 {latency['p99']:5.1f} ms"
            f"  max {latency['max']:5.1f} ms  ({latency['n']} samples)",
            flush=True,
        )
    finally:
        server.stop()

    from approvals.models import Checkpoint

    counts = [int(c) for c in args.waiters.split(",") if c]
    pending = list(
        Checkpoint.objects.filter(status="pending", agent__slug="bench-0").values_list(
            "pk", flat=True
        )[: max(counts)]
    )
    key = pairs[0][0]
    from agents.services import Ask, ask
    from approvals.audit import Actor

    if len(pending) < max(counts):
        from agents.models import Run

        run = Run.objects.select_related("agent").get(pk=pairs[0][1])
        for _ in range(max(counts) - len(pending)):
            (cp,) = ask(
                run, [Ask(title="w", action={"tool": "t"})], actor=Actor.for_agent(run.agent)
            )
            pending.append(cp.pk)
    single = Server(args.port + 1, 1)
    try:
        rows = asyncio.run(
            waiters_memory(args.port + 1, single.proc.pid, key, [str(p) for p in pending], counts)
        )
    finally:
        single.stop()
    for waiting, rss, threads in rows:
        print(
            f"one server process, {waiting:5d} waiters: RSS {rss:6.1f} MB, {threads} threads",
            flush=True,
        )


if __name__ == "__main__":
    main()
