"""The front door (issue 18): what a client gets through the portal's public port, per
topology, side by side in one run on PostgreSQL, loaded from this process with bench/api.py's
closed loop and bench/_http.py's keep-alive connections.

Topologies (each started for its cell, stopped after it; every one with the ledger's
sequencer, since a long-poll returns the decision with its seq and signed receipt):
  before      --before-ref's `runportal` web tier (default 8737c59, the last one with a proxy
              of ours): uvicorn on the public port, forwarding every path but long-poll to
              granian (1 worker, 4 threads) through its httpx proxy (HITL_WSGI_UPSTREAM)
  make-run    `make run`'s web server now: one granian serving hitlportal.asgi for every path
              (`hitlportal.servers.portal_command`: bounded heads read within a timeout)
  make-run-uvicorn  diagnostic: what make-run ran first, one uvicorn (h11, heads up to 2 MiB)
              for every path: the same ASGI app behind another HTTP server
  nginx-tls   production (docs/production.md): nginx with docs/nginx/ as tests/production.py
              renders it (TLS, 1 worker process), granian (--wsgi-workers, 4 threads each: pages
              and the API), uvicorn (long-poll, /mcp)
  nginx-http  the same, the docs' server block with one more `listen` without ssl: nginx's
              own cost without TLS's (client and server)
  granian     for reference, the WSGI server alone with no proxy (its long-poll is then the
              Django view, polling every 0.1 s)

Database settings per process as the README's Production section says: DB_CONN_MAX_AGE=600
for the WSGI servers and the sequencer, DB_POOL=1 for the ASGI servers.

Per cell, on the public port:
  1. GET /api/v1/health/, --clients back to back for --duration s (after 2 s of warm-up)
  2. POST /api/v1/checkpoints/ with an agent key, the same
     (for both: req/s, p50, p99, and CPU per request of the servers and of this client)
  3. decision → long-poll wake: a waiter parked on the public port, a reviewer decides through
     it; from the decision's response to the wait's, --samples times, nothing else running
     (--background-rate: creates paced meanwhile)

--reps repetitions, alternating the order of the topologies. This client shares the machine's
cores with the servers: under TLS its own encryption is CPU the servers do not get.

    git worktree add /tmp/benchfront-old 8737c59
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_front \\
        .venv/bin/python bench/frontdoor.py --before-tree /tmp/benchfront-old
    git worktree remove /tmp/benchfront-old

Without --before-tree the before code is unpacked with `git archive` (bench/api.py's way).
Databases <name> (this code) and <name>_old (the before code), from DATABASE_URL's name,
created and dropped. Ports --port .. --port+54.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import api as load  # noqa: E402  (bench/api.py: set-up, closed loop, wake)
from hitlportal.servers import granian_command, portal_command, uvicorn_command  # noqa: E402
from tests import production, servers  # noqa: E402

TOPOLOGIES = ["before", "make-run", "make-run-uvicorn", "nginx-tls", "nginx-http", "granian"]


@dataclass
class Cell:
    """One topology's processes for one repetition."""

    topology: str
    code: load.Config  # the tree and its database (shared by every cell of that code)
    base: int  # its ports: base (public), +1 WSGI, +2 ASGI, +3 nginx's redirect, +4 plain
    procs: list[subprocess.Popen] = field(default_factory=list)
    public: int = 0
    tls: ssl.SSLContext | None = None
    directory: tempfile.TemporaryDirectory | None = None


def process_env(code: load.Config, asgi: bool, **extra: str) -> dict[str, str]:
    env = {**code.env, **extra}
    if asgi:
        env["DB_POOL"] = "1"
    return env


def spawn(cell: Cell, cmd: list[str], env: dict[str, str], port: int) -> None:
    cell.procs.append(subprocess.Popen(cmd, cwd=cell.code.tree, env=env))
    servers.wait_healthy(cell.procs[-1], port)


def before_commands(tree: Path, public: int, wsgi: int) -> tuple[list[str], list[str]]:
    """The two web servers as the before tree's own `runportal` built them (its
    hitlportal.servers, its arguments), asked of that tree."""
    script = (
        "import json; from hitlportal.servers import granian_command, uvicorn_command; "
        f"print(json.dumps([granian_command('127.0.0.1', {wsgi}, 1), "
        f"[*uvicorn_command('127.0.0.1', {public}), '--timeout-graceful-shutdown', '5']]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": load.code_path(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    wsgi_cmd, front = json.loads(out.stdout)
    return wsgi_cmd, front


def start(cell: Cell, wsgi_workers: int) -> None:
    code, base = cell.code, cell.base
    public, wsgi, asgi, redirect, plain = base, base + 1, base + 2, base + 3, base + 4
    cell.public = public
    try:
        if cell.topology == "before":
            wsgi_cmd, front = before_commands(code.tree, public, wsgi)
            spawn(cell, wsgi_cmd, process_env(code, False), wsgi)
            upstream = f"http://127.0.0.1:{wsgi}"
            spawn(cell, front, process_env(code, True, HITL_WSGI_UPSTREAM=upstream), public)
        elif cell.topology == "make-run":
            cmd = portal_command("127.0.0.1", public, 1)
            spawn(cell, cmd, process_env(code, True), public)
        elif cell.topology == "make-run-uvicorn":
            cmd = uvicorn_command(
                "127.0.0.1", public, "--workers", "1", "--timeout-graceful-shutdown", "5",
                "--http", "h11", "--h11-max-incomplete-event-size", str(2 * 1024 * 1024),
                "--log-level", "warning",
            )  # fmt: skip
            spawn(cell, cmd, process_env(code, True), public)
        elif cell.topology == "granian":
            spawn(cell, granian_command("127.0.0.1", public, wsgi_workers), code.env, public)
        else:
            env = {**code.env, "HITL_TRUSTED_PROXIES": "127.0.0.1"}
            spawn(cell, granian_command("127.0.0.1", wsgi, wsgi_workers), env, wsgi)
            asgi_cmd = uvicorn_command("127.0.0.1", asgi, "--log-level", "warning")
            spawn(cell, asgi_cmd, process_env(code, True, **env), asgi)
            cell.directory = tempfile.TemporaryDirectory(prefix="hitl-frontdoor-")
            directory = Path(cell.directory.name)
            conf = production.render_site(
                directory, wsgi_port=wsgi, asgi_port=asgi, https_port=public,
                http_port=redirect,
            )  # fmt: skip
            if cell.topology == "nginx-http":
                site = directory / "hitl.conf"
                text, tls_listen = site.read_text(), f"listen 127.0.0.1:{public} ssl http2;"
                assert text.count(tls_listen) == 1, f"rendered site has no {tls_listen!r}"
                site.write_text(
                    text.replace(tls_listen, f"{tls_listen}\n    listen 127.0.0.1:{plain};")
                )
                cell.public = plain
            else:
                cell.tls = ssl.create_default_context(cafile=str(directory / "cert.pem"))
            cell.procs.append(
                subprocess.Popen([production.NGINX, "-c", str(conf), "-p", str(directory)])
            )
            wait_answering(cell)
        cell.procs.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "sequencer"], cwd=code.tree, env=code.env
            )
        )
    except BaseException:
        stop(cell)
        raise


def wait_answering(cell: Cell, timeout: float = 20) -> None:
    """Until /api/v1/health/ answers 200 through nginx (the last process started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cell.procs[-1].poll() is not None:
            raise RuntimeError(f"nginx exited with {cell.procs[-1].returncode}")
        try:
            if asyncio.run(health_once(cell)) == 200:
                return
        except (OSError, EOFError):  # not listening yet; closed mid-answer
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{cell.topology}: the public port does not answer")


async def health_once(cell: Cell) -> int:
    conn = await load.Connection("127.0.0.1", cell.public, cell.tls).open()
    try:
        status, _ = await conn.request("GET", "/api/v1/health/")
    finally:
        conn.close()
    return status


def stop(cell: Cell) -> None:
    for proc in reversed(cell.procs):
        servers.stop(proc, timeout=15)
    cell.procs = []
    if cell.directory is not None:
        cell.directory.cleanup()
        cell.directory = None


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def with_cpu(cell: Cell, run: Callable[[], dict]) -> dict:
    """`run`'s figures, plus CPU per request (the cell's processes; this client) over the
    whole run, warm-up included: its requests are rps (the measured window's) times its time."""
    pids = load.tree_pids([p.pid for p in cell.procs])
    server0, client0, t0 = load.cpu_seconds(pids), client_cpu(), time.perf_counter()
    out = run()
    elapsed = time.perf_counter() - t0
    requests = max(1.0, out["rps"] * elapsed)
    out["server_ms"] = (load.cpu_seconds(pids) - server0) / requests * 1000
    out["client_ms"] = (client_cpu() - client0) / requests * 1000
    return out


def measure(cell: Cell, args) -> dict:
    cfg = replace(cell.code, port=cell.public, wait_port=cell.public, ssl=cell.tls)

    def closed_loop(make_request) -> dict:
        """bench/api.py's closed loop on the public port, with CPU per request."""
        return with_cpu(
            cell,
            lambda: asyncio.run(
                load.closed(cell.public, args.clients, args.duration, make_request, ssl=cell.tls)
            ),
        )

    out: dict = {"load": os.getloadavg()[0]}
    out["health"] = closed_loop(lambda i, n: ("GET", "/api/v1/health/", None, None))
    print(line("GET /health/", out["health"]), flush=True)
    out["create"] = closed_loop(load.create_request(cfg))
    print(line("POST /checkpoints/", out["create"]), flush=True)
    time.sleep(1)
    out["wake"] = asyncio.run(load.wake_latency(cfg, args.samples, args.background_rate))
    w = out["wake"]
    print(
        f"  {'decision → wait returns':<22} p50 {w['p50']:6.1f} ms  p99 {w['p99']:6.1f} ms  "
        f"({w['n']} samples)",
        flush=True,
    )
    return out


def line(name: str, r: dict) -> str:
    errors = f"  errors {r['errors']}" if r.get("errors") else ""
    return (
        f"  {name:<22} {r['rps']:7.0f} req/s  p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  "
        f"CPU/request {r['server_ms']:.2f} ms servers, {r['client_ms']:.2f} ms client{errors}"
    )


LABELS = {
    "before": "before: uvicorn → httpx proxy → granian 1 × 4",
    "make-run": "`make run` now: one granian (ASGI)",
    "make-run-uvicorn": "diagnostic: `make run` on uvicorn (h11) instead",
    "nginx-tls": "production: nginx (TLS) → granian {w} × 4 + uvicorn",
    "nginx-http": "production, plain HTTP: nginx → granian {w} × 4 + uvicorn",
    "granian": "reference: granian {w} × 4 alone",
}


def table(results: dict[str, list[dict]], wsgi_workers: int) -> str:
    """Markdown, one row per topology and repetition."""
    rows = [
        "| topology | run | `/health/` req/s | p50 / p99 ms | CPU per request: servers / "
        "client ms | creates req/s | p50 / p99 ms | CPU per create: servers / client ms "
        "| decision → wake p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for topology, runs in results.items():
        for n, r in enumerate(runs, 1):
            h, c, w = r["health"], r["create"], r["wake"]
            rows.append(
                f"| {LABELS[topology].format(w=wsgi_workers)} | {n} | {h['rps']:,.0f} "
                f"| {h['p50']:.1f} / {h['p99']:.1f} | {h['server_ms']:.2f} / {h['client_ms']:.2f} "
                f"| {c['rps']:,.0f} | {c['p50']:.0f} / {c['p99']:.0f} "
                f"| {c['server_ms']:.1f} / {c['client_ms']:.2f} | {w['p50']:.1f} / {w['p99']:.1f} |"
            )
    return "\n".join(rows)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def drop(url: str, names: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=12, help="s per phase, after warm-up")
    parser.add_argument("--samples", type=int, default=100, help="decision → wake samples")
    parser.add_argument("--background-rate", type=float, default=0, help="creates/s meanwhile")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--wsgi-workers", type=int, default=2, help="production's granian")
    parser.add_argument("--before-ref", default="8737c59")
    parser.add_argument("--before-tree", type=Path, help="a checkout of --before-ref")
    parser.add_argument("--only", default=",".join(TOPOLOGIES), help="topologies to run")
    parser.add_argument("--port", type=int, default=18900)
    parser.add_argument("--keep-databases", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL=postgres://... (this benchmark runs on PostgreSQL)")
    if not production.nginx_available():
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parsed = urlparse(url)
    name = parsed.path.lstrip("/") or "bench_front"
    # Created and dropped from the server's maintenance database (bench/api.py's `database`
    # names each code's own).
    url = urlunparse(parsed._replace(path="/postgres"))
    topologies = [t for t in args.only.split(",") if t]
    unknown = set(topologies) - set(TOPOLOGIES)
    if unknown:
        raise SystemExit(f"unknown topologies: {', '.join(sorted(unknown))}")
    codes: dict[str, load.Config] = {}
    if "before" in topologies:
        tree = args.before_tree or load.unpack(args.before_ref)
        code = load.Config("old", args.before_ref, tree.resolve(), "granian", False, f"{name}_old")
        codes["before"] = code
    if set(topologies) - {"before"}:
        codes["now"] = load.Config("now", "this tree", ROOT, "granian", False, name)
    print(
        f"PostgreSQL; {args.clients} clients; {os.cpu_count()} CPUs; {args.duration:.0f} s per "
        f"phase; {args.reps} repetitions\nuptime at the start: {uptime()}",
        flush=True,
    )
    results: dict[str, list[dict]] = {t: [] for t in topologies}
    try:
        for code in codes.values():
            load.prepare(code, url, args.clients, 8)
        for rep in range(args.reps):
            order = topologies if rep % 2 == 0 else topologies[::-1]
            for topology in order:
                index = TOPOLOGIES.index(topology)
                code = codes["before" if topology == "before" else "now"]
                cell = Cell(topology, code, args.port + 10 * index)
                print(
                    f"\n[{rep + 1}] {LABELS[topology].format(w=args.wsgi_workers)}  "
                    f"(load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
                start(cell, args.wsgi_workers)
                try:
                    results[topology].append(measure(cell, args))
                finally:
                    stop(cell)
    finally:
        if not args.keep_databases:
            drop(url, [code.db for code in codes.values()])
    print(f"\nuptime at the end: {uptime()}\n\n{table(results, args.wsgi_workers)}", flush=True)


if __name__ == "__main__":
    main()
