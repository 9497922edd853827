"""API benchmark: today's deployment and this branch's, side by side in one run, loaded from
this process (PostgreSQL when DATABASE_URL is set, else SQLite).

Configurations (each on a fresh database of its own, set up by its own code):
  before  the code of --before-ref (default: the commit this branch started from), as its
          README deployed it: `uvicorn hitlportal.asgi:application --workers 2`
  after   this branch as deployed (--after, default granian, 2 workers of 4 blocking threads)
          for the API, uvicorn (1 worker) for long-poll only, the ledger's sequencer process
  --variants  this branch's code under other servers (uvicorn, gunicorn sync, granian with
          other worker/thread counts): the figures behind the choice of WSGI server

What is measured, per configuration:
  1. GET /api/v1/health/, 16 clients back to back
  2. POST /api/v1/checkpoints/, 16 clients back to back (req/s, p50, p99)
  3. POST /api/v1/checkpoints/ paced at --rate (offered) requests/s: achieved rate, p50, p99
     (latency from the scheduled send time: queueing counts)
  4. POST .../decision/ (approve), 16 reviewers' clients back to back
  5. decision → long-poll wake: a waiter parked on the long-poll server, a reviewer decides
     through the API; latency from the decision's response to the wait's, while creates run
     paced at --background-rate requests/s
  6. after only: merge delay (an event's insert → the signed head that includes it) over the
     paced run, and CPU per create (server processes; the whole machine)

    .venv/bin/python bench/api.py                                             # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/api.py

Databases `hitl_bench_api_before` / `hitl_bench_api_after` (recreated) on the server
DATABASE_URL points at. Ports 8180-8199.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import json
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _http import Connection  # noqa: E402
from _proc import tree_pids  # noqa: E402

from hitlportal.servers import (  # noqa: E402
    granian_command,
    gunicorn_command,
    uvicorn_command,
)
from tests import servers  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
ID = re.compile(rb'"id":"([0-9a-f-]{36})"')


# --- configurations ------------------------------------------------------------------------


@dataclass
class Config:
    name: str
    label: str
    tree: Path
    server: str  # uvicorn | granian | gunicorn
    split: bool  # long-poll on its own uvicorn, plus the sequencer
    db: str
    threads: int = 1
    workers: int = 0
    env: dict = field(default_factory=dict)
    procs: list = field(default_factory=list)
    port: int = 0
    wait_port: int = 0
    data: dict = field(default_factory=dict)
    ssl: object = None  # an ssl.SSLContext: the ports speak HTTPS (bench/frontdoor.py)


def base_env() -> dict:
    return {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "LOG_LEVEL": "WARNING",
        # Throttling stays on (part of every request) but never triggers.
        "HITL_API_THROTTLE_AGENT": "1000000/m",
        "HITL_API_THROTTLE_USER": "1000000/m",
        "HITL_LEDGER_SIGNING_KEY": "bench-"
        and __import__("base64").b64encode(os.urandom(32)).decode(),
        # production mode encrypts secrets at rest: a throwaway key for the bench databases
        "HITL_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DJANGO_SETTINGS_MODULE": "hitlportal.settings",
        "PYTHONPATH": "",
    }


def database(cfg: Config, url: str) -> str:
    if url.startswith("postgres"):
        import psycopg

        parsed = urlparse(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {cfg.db} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {cfg.db}")
        cfg.env["DATABASE_URL"] = urlunparse(parsed._replace(path=f"/{cfg.db}"))
        return "PostgreSQL"
    cfg.env.pop("DATABASE_URL", None)
    cfg.env["HITL_VAR_DIR"] = tempfile.mkdtemp(prefix=f"hitl-bench-{cfg.name}-")
    return "SQLite (WAL)"


def unpack(ref: str) -> Path:
    """The code of `ref`, from this repository (git archive: nothing is checked out here)."""
    target = Path(tempfile.gettempdir()) / f"hitl-bench-{ref}"
    if not target.exists():
        target.mkdir()
        archive = subprocess.run(
            ["git", "archive", ref], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def code_path(tree: Path) -> str:
    """A tree's code for PYTHONPATH: its packages, and its client where the client is its own
    distribution (clients/python; older trees have hitl_client/ at the root)."""
    client = tree / "clients" / "python"
    return os.pathsep.join([*([str(client)] if client.is_dir() else []), str(tree)])


def prepare(cfg: Config, url: str, clients: int, reviewers: int) -> None:
    cfg.env = {**base_env(), **cfg.env, "PYTHONPATH": code_path(cfg.tree)}
    database(cfg, url)
    if cfg.env.get("DATABASE_URL", "").startswith("postgres"):
        if cfg.server == "uvicorn":
            cfg.env["DB_POOL"] = "1"  # the README's advice under ASGI
        else:
            cfg.env["DB_CONN_MAX_AGE"] = "600"  # one thread per WSGI worker: keep its connection
    # Run from the tree (not from bench/, whose api.py would shadow the `api` app).
    script = (ROOT / "bench" / "_api_setup.py").read_text()
    out = subprocess.run(
        [sys.executable, "-c", script, str(clients), str(reviewers)],
        cwd=cfg.tree,
        env=cfg.env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"set-up of {cfg.name} failed:\n{out.stderr[-3000:]}")
    cfg.data = json.loads(out.stdout.strip().splitlines()[-1])


def start(cfg: Config, port: int, workers: int) -> None:
    env = {**cfg.env}
    cfg.port = cfg.wait_port = port
    if cfg.server == "uvicorn":
        cmd = uvicorn_command("127.0.0.1", port, "--workers", str(workers), "--backlog", "8192")
    elif cfg.server == "gunicorn":
        cmd = gunicorn_command("127.0.0.1", port, workers, "--backlog", "8192")
    else:
        cmd = granian_command("127.0.0.1", port, workers, "--backlog", "8192", threads=cfg.threads)
    cfg.procs.append(subprocess.Popen(cmd, cwd=cfg.tree, env=env))
    servers.wait_healthy(cfg.procs[-1], port)
    if cfg.split:
        cfg.wait_port = port + 1
        cmd = uvicorn_command("127.0.0.1", cfg.wait_port, "--log-level", "warning")
        cfg.procs.append(subprocess.Popen(cmd, cwd=cfg.tree, env=env))
        servers.wait_healthy(cfg.procs[-1], cfg.wait_port)
        cfg.procs.append(
            subprocess.Popen([sys.executable, "manage.py", "sequencer"], cwd=cfg.tree, env=env)
        )


def stop(cfg: Config) -> None:
    for proc in reversed(cfg.procs):
        servers.stop(proc, timeout=15)
    cfg.procs = []


# --- load ----------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def stats(latencies: list[float], duration: float, errors: dict) -> dict:
    return {
        "rps": len(latencies) / duration,
        "p50": pct(latencies, 50) * 1000,
        "p99": pct(latencies, 99) * 1000,
        "errors": errors,
    }


async def closed(port, clients, duration, make_request, on_body=None, ssl=None) -> dict:
    """`clients` connections back to back for `duration` s after a 2 s warm-up."""
    latencies: list[float] = []
    errors: dict[int, int] = {}
    start = time.perf_counter()
    warm_end, end = start + 2, start + 2 + duration

    async def client(i: int) -> None:
        conn = await Connection("127.0.0.1", port, ssl).open()
        n = 0
        try:
            while (now := time.perf_counter()) < end:
                request = make_request(i, n)
                if request is None:
                    return
                t0 = time.perf_counter()
                status, body = await conn.request(*request)
                t1 = time.perf_counter()
                n += 1
                if on_body is not None and 200 <= status < 300:
                    on_body(body)
                if now >= warm_end:
                    if 200 <= status < 300:
                        latencies.append(t1 - t0)
                    else:
                        errors[status] = errors.get(status, 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return stats(latencies, duration, errors)


async def paced(
    port, rate, duration, make_request, on_body=None, connections=48, ssl=None, give_up=None
) -> dict:
    """Open loop: request k is due at k / rate; latency counts from when it was due.
    `give_up` (s from the start): requests not sent by then are counted as errors
    ("unsent") instead of sent, so a server far behind does not stretch the run."""
    latencies: list[float] = []
    errors: dict[int, int] = {}
    queue: asyncio.Queue = asyncio.Queue()
    total = int(rate * duration)
    start = time.perf_counter() + 0.2

    async def worker() -> None:
        conn = await Connection("127.0.0.1", port, ssl).open()
        try:
            while True:
                k, due = await queue.get()
                if k is None:
                    return
                if give_up is not None and time.perf_counter() > start + give_up:
                    errors["unsent"] = errors.get("unsent", 0) + 1
                    continue
                status, body = await conn.request(*make_request(k % 16, k))
                if 200 <= status < 300:
                    latencies.append(time.perf_counter() - due)
                    if on_body is not None:
                        on_body(body)
                else:
                    errors[status] = errors.get(status, 0) + 1
        finally:
            conn.close()

    workers = [asyncio.ensure_future(worker()) for _ in range(connections)]
    for k in range(total):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((k, due))
    for _ in workers:
        queue.put_nowait((None, None))
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {**stats(latencies, elapsed, errors), "offered": rate}


def create_request(cfg: Config):
    pairs = cfg.data["pairs"]

    def make(i: int, n: int):
        key, run_id = pairs[i % len(pairs)]
        body = {
            "run": run_id,
            "title": f"Delete batch {n}",
            "risk": "high",
            "action": {"tool": "delete_files", "args": {"paths": [f"/tmp/{n}.log"]}},
            "context": {"reasoning": ["disk is full", "these are oldest"]},
        }
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}
        return "POST", "/api/v1/checkpoints/", headers, body

    return make


def decision_request(cfg: Config, pending: list[str]):
    tokens = cfg.data["reviewers"]

    def make(i: int, n: int):
        if not pending:
            return None
        headers = {
            "Authorization": f"Bearer {tokens[i % len(tokens)]}",
            "Idempotency-Key": str(uuid.uuid4()),
        }
        return (
            "POST",
            f"/api/v1/checkpoints/{pending.pop()}/decision/",
            headers,
            {"outcome": "approve"},
        )

    return make


async def wake_latency(cfg: Config, samples: int, background_rate: float) -> dict:
    key, run_id = cfg.data["pairs"][0]
    token = cfg.data["reviewers"][0]
    agent = {"Authorization": f"Bearer {key}"}
    person = {"Authorization": f"Bearer {token}"}
    api = await Connection("127.0.0.1", cfg.port, cfg.ssl).open()
    waiter = await Connection("127.0.0.1", cfg.wait_port, cfg.ssl).open()
    background = None
    if background_rate:  # 0: the wake alone, on an otherwise idle portal
        background = asyncio.ensure_future(
            paced(
                cfg.port,
                background_rate,
                samples * 0.25 + 5,
                create_request(cfg),
                connections=16,
                ssl=cfg.ssl,
            )
        )
        await asyncio.sleep(1)
    after_decision, after_send = [], []
    body = {"run": run_id, "title": "latency", "action": {"tool": "t", "args": {}}}
    for _ in range(samples):
        status, created = await api.request(
            "POST", "/api/v1/checkpoints/", {**agent, "Idempotency-Key": str(uuid.uuid4())}, body
        )
        assert status == 201, created[:300]
        cp = ID.search(created).group(1).decode()
        await waiter.send("GET", f"/api/v1/checkpoints/{cp}/wait?timeout=30", agent)
        await asyncio.sleep(0.05)  # parked on the server
        sent = time.perf_counter()
        status, _ = await api.request(
            "POST",
            f"/api/v1/checkpoints/{cp}/decision/",
            {**person, "Idempotency-Key": str(uuid.uuid4())},
            {"outcome": "approve"},
        )
        decided = time.perf_counter()
        assert status == 200
        status, answer = await waiter.receive()
        woke = time.perf_counter()
        assert status == 200 and b'"approved"' in answer, answer[:300]
        after_decision.append(max(0.0, woke - decided))
        after_send.append(woke - sent)
    api.close()
    waiter.close()
    load = await background if background is not None else None
    return {
        "p50": pct(after_decision, 50) * 1000,
        "p99": pct(after_decision, 99) * 1000,
        "send_p99": pct(after_send, 99) * 1000,
        "n": samples,
        "background": load,
    }


# --- CPU and the ledger ----------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK


def machine_busy() -> float:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(parts) - parts[3] - parts[4]) / CLK


def merge_delays(cfg: Config, since: dt.datetime) -> dict:
    """Per event inserted since `since`: the signed head that first includes it, minus the
    event's insert time."""
    url = cfg.env.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        import psycopg

        conn = psycopg.connect(url)
        rows = conn.execute(
            "SELECT seq, extract(epoch from at) FROM approvals_auditevent "
            "WHERE at >= %s AND seq IS NOT NULL",
            [since],
        ).fetchall()
        events = [(s, float(a)) for s, a in rows]
    else:
        import sqlite3

        conn = sqlite3.connect(Path(cfg.env["HITL_VAR_DIR"]) / "hitl.sqlite3")
        rows = conn.execute(
            "SELECT seq, at FROM approvals_auditevent WHERE seq IS NOT NULL"
        ).fetchall()
        stamps = [(s, dt.datetime.fromisoformat(a).replace(tzinfo=dt.UTC)) for s, a in rows]
        events = [(s, at.timestamp()) for s, at in stamps if at >= since]
    heads = conn.execute(
        "SELECT tree_size, timestamp FROM core_treehead ORDER BY tree_size"
    ).fetchall()
    pending = conn.execute(
        "SELECT count(*) FROM approvals_auditevent WHERE seq IS NULL"
    ).fetchone()[0]
    conn.close()
    sizes = [size for size, _ts in heads]
    delays = []
    for seq, at in events:
        i = bisect.bisect_left(sizes, seq)
        if i < len(heads):
            delays.append(heads[i][1] / 1000 - float(at))
    return {
        "p50": pct(delays, 50) * 1000,
        "p99": pct(delays, 99) * 1000,
        "max": max(delays) * 1000 if delays else float("nan"),
        "n": len(delays),
        "heads": len(heads),
        "pending": pending,
    }


# --- the run -------------------------------------------------------------------------------


def line(name: str, r: dict) -> str:
    offered = f" (offered {r['offered']:.0f}/s)" if "offered" in r else ""
    errors = f"  errors {r['errors']}" if r.get("errors") else ""
    return (
        f"  {name:<28} {r['rps']:7.0f} req/s{offered}  p50 {r['p50']:6.1f} ms  "
        f"p99 {r['p99']:6.1f} ms{errors}"
    )


def measure(cfg: Config, args) -> dict:
    out: dict = {}
    phases = set(args.phases.split(","))
    out["health"] = asyncio.run(
        closed(
            cfg.port,
            args.clients,
            args.duration,
            lambda i, n: ("GET", "/api/v1/health/", None, None),
        )
    )
    print(line("GET /health/", out["health"]), flush=True)
    pending: list[str] = []

    def keep(body: bytes) -> None:
        match = ID.search(body)
        if match:
            pending.append(match.group(1).decode())

    roots = [p.pid for p in cfg.procs]
    cpu0, busy0 = cpu_seconds(tree_pids(roots)), machine_busy()
    out["create"] = asyncio.run(
        closed(cfg.port, args.clients, args.duration, create_request(cfg), keep)
    )
    creates = out["create"]["rps"] * args.duration
    out["cpu_ms"] = (cpu_seconds(tree_pids(roots)) - cpu0) / max(1, creates) * 1000
    out["machine_ms"] = (machine_busy() - busy0) / max(1, creates) * 1000
    print(
        line("POST /checkpoints/", out["create"])
        + f"  CPU/create {out['cpu_ms']:.1f} ms servers, {out['machine_ms']:.1f} ms machine",
        flush=True,
    )
    time.sleep(2)
    since = dt.datetime.now(dt.UTC)
    if "paced" in phases:
        out["paced"] = asyncio.run(
            paced(cfg.port, args.rate, args.duration, create_request(cfg), keep)
        )
        print(line("POST /checkpoints/ paced", out["paced"]), flush=True)
    if cfg.split and "paced" in phases:
        time.sleep(1)
        out["merge"] = merge_delays(cfg, since)
        m = out["merge"]
        print(
            f"  {'merge delay (paced run)':<28} p50 {m['p50']:6.1f} ms  p99 {m['p99']:6.1f} ms  "
            f"max {m['max']:6.1f} ms  ({m['n']} events, {m['pending']} unsequenced after)",
            flush=True,
        )
    out["decide"] = asyncio.run(
        closed(cfg.port, args.clients, args.duration, decision_request(cfg, pending))
    )
    print(line("POST .../decision/", out["decide"]), flush=True)
    if "wake" not in phases:
        return out
    out["wake"] = asyncio.run(wake_latency(cfg, args.samples, args.background_rate))
    w, load = out["wake"], out["wake"]["background"]
    meanwhile = (
        f"creates meanwhile {load['rps']:.0f}/s of {args.background_rate:.0f}/s offered, "
        f"p99 {load['p99']:.0f} ms"
        if load
        else "nothing else running"
    )
    print(
        f"  {'decision → wait returns':<28} p50 {w['p50']:6.1f} ms  p99 {w['p99']:6.1f} ms  "
        f"({w['n']} samples; {meanwhile})",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--after",
        default="granian:2:4",
        help="this branch's WSGI server as server:workers:threads (threads: granian only)",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="more of this branch's servers to compare, e.g. uvicorn:2,gunicorn:4,granian:4:1",
    )
    parser.add_argument("--rate", type=float, default=150, help="offered creates/s, paced")
    parser.add_argument("--background-rate", type=float, default=100)
    parser.add_argument("--samples", type=int, default=100, help="decision → wait samples")
    parser.add_argument("--before-ref", default="eae3c54", help="today's code ('' to skip)")
    parser.add_argument("--port", type=int, default=8180)
    parser.add_argument("--phases", default="paced,wake", help="optional phases to run")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    url = os.environ.get("DATABASE_URL", "")
    configs = []
    if args.before_ref:
        configs.append(
            Config(
                "before",
                f"today ({args.before_ref}): uvicorn --workers {args.workers}",
                unpack(args.before_ref),
                "uvicorn",
                False,
                "hitl_bench_api_before",
            )
        )
    variants = [args.after, *[v for v in args.variants.split(",") if v]]
    for n, variant in enumerate(variants):
        server, *sizes = variant.split(":")
        workers, threads = (sizes + ["2", "1"][len(sizes) :])[:2]
        threads_label = f", {threads} threads" if server == "granian" else ""
        configs.append(
            Config(
                "after" if n == 0 else f"after-{n}",
                f"this branch: {server} x{workers}{threads_label} + uvicorn long-poll + sequencer",
                ROOT,
                server,
                True,
                f"hitl_bench_api_after_{n}",
                threads=int(threads),
                workers=int(workers),
            )
        )
    kind = "PostgreSQL" if url.startswith("postgres") else "SQLite (WAL)"
    print(
        f"database: {kind}; {args.clients} clients; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = {}
    for i, cfg in enumerate(configs):
        prepare(cfg, url, args.clients, 8)
        start(cfg, args.port + 4 * i, cfg.workers or args.workers)
        print(f"\n{cfg.label}", flush=True)
        try:
            results[cfg.name] = measure(cfg, args)
        finally:
            stop(cfg)
    if "before" in results:
        b, a = results["before"], results["after"]
        print("\nafter / before:", flush=True)
        for key in ("health", "create", "paced", "decide"):
            if key not in a or key not in b:
                continue
            print(
                f"  {key:<8} throughput ×{a[key]['rps'] / b[key]['rps']:.2f}, "
                f"p99 {b[key]['p99']:.0f} → {a[key]['p99']:.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
