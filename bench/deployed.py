"""As deployed: the processes `manage.py runportal` starts (the web server, `portald`, a
django-q2 cluster) on PostgreSQL, with a real SMTP receiver (aiosmtpd, in a process of its
own) and 8 reviewers who get an email for every request; for the ORM and the Redis broker;
this tree and --before-ref side by side in one run (issue 20).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/deployed.py [--quick] [--sustain-seconds 60]
    make bench                       # the same, with the defaults

The processes (--topology): `production` (default) starts runportal's three with the settings
docs/production.md gives each (granian WSGI for the API with DB_CONN_MAX_AGE=600, uvicorn for
long-poll with DB_POOL=1, portald and qcluster with DB_CONN_MAX_AGE=600); `runportal` runs
`manage.py runportal --no-demo` itself (one environment for all: connections per request).

Per deployment (a fresh database `hitl_bench_deployed_<ref>_<broker>`, set up by that tree's
own code through bench/_api_setup.py: 16 agents with a run each, 8 staff reviewers with email
in the default review role "ops", which has no channel row of its own, so every request
emails all 8):
  1. sustain   the highest create rate R whose work the cluster keeps up with: offered at R
               (open loop), the task queue (the broker's queue and the pending notification
               deliveries and fan-outs) must be drained within 10 s of the load stopping.
               Probes of --probe-seconds from --start-rate, doubling while they hold, then
               --bisect steps; the best is confirmed over --sustain-seconds (queue depth over
               time printed)
  2. create16  POST /api/v1/checkpoints/, 16 clients back to back (req/s, p50, p99)
  3. decide16  POST .../decision/ on those, 16 clients (8 reviewers' tokens)
  4. wake      decision → long-poll wake while creates run paced at --wake-background/s
               (bench/api.py's wake_latency)
  5. open      POST /api/v1/checkpoints/ open loop at --open-rates (latency from the
               scheduled send time)
After each phase the queue is given --drain-cap s to drain (what was left is printed; the next
phase then starts with it). CPU per create / decision is each process group's utime+stime
(its children's included, reaped ones too) over the phase and its drain: the web server,
the cluster, portald, and the PostgreSQL backends of the deployment's database (pids from
pg_stat_activity, sampled every 0.25 s). Statements per op: the tree's own
bench/statements.py, run against the deployment's database. The load average is printed at
the start and end of each phase.

Only the public HTTP API, management commands and the database are used, so any commit
runs. Ports 18400-18499 on 127.0.0.1; Redis: only the db of --redis-url is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import api as web  # noqa: E402  (bench/api.py: load generators, set-up, CPU)
from hitlportal.servers import granian_command, uvicorn_command  # noqa: E402
from tests import servers  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
PORT_BASE, SMTP_PORT = 18400, 18499
KNOBS = Path("/tmp/knobs-site")  # the helpers' sitecustomize (no editable finder), if present
CHILDREN = [("granian", "web"), ("uvicorn", "web"), ("portald", "portald"), ("qcluster", "cluster")]
TOPOLOGY = {
    "production": "granian WSGI (DB_CONN_MAX_AGE=600) + uvicorn long-poll (DB_POOL=1) + "
    "portald + qcluster (DB_CONN_MAX_AGE=600)",
    "runportal": "manage.py runportal (granian ASGI + portald + qcluster, one env)",
}
DRAIN_WINDOW = 10.0  # s after the load stops: the definition of "the queue kept up"


# --- the SMTP receiver, in a process of its own (parsing 800 mails/s would starve the load
# generator of the GIL) ----------------------------------------------------------------------


def _smtp_serve(port: int, count, stop) -> None:
    from tests.receivers import SmtpReceiver

    smtp = SmtpReceiver(port=port)
    try:
        while not stop.wait(0.1):
            n = len(smtp.mails)
            del smtp.mails[:n]  # count them, keep none: a run receives ~10^5
            with count.get_lock():
                count.value += n
    finally:
        smtp.stop()


class Mailbox:
    def __init__(self, port: int):
        ctx = multiprocessing.get_context("fork")
        self.count, self._stop = ctx.Value("q", 0), ctx.Event()
        self.proc = ctx.Process(target=_smtp_serve, args=(port, self.count, self._stop))
        self.proc.start()
        self.url = f"smtp://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with __import__("socket").create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the SMTP receiver did not start")

    @property
    def received(self) -> int:
        return self.count.value

    def stop(self) -> None:
        self._stop.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# --- CPU ---------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree_cpu(root: int) -> float:
    """utime+stime of `root` and its descendants, plus what each has reaped (cutime+cstime:
    a recycled django-q2 worker's CPU moves to its parent's)."""
    total = 0
    for pid in web.tree_pids([root]):
        fields = _stat(pid)
        if fields:
            total += sum(int(x) for x in fields[11:15])
    return total / CLK


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- the queue, and the database's CPU -------------------------------------------------------


COALESCE: str | None = None  # --coalesce-per-minute


class Monitor(threading.Thread):
    """Samples, every 0.25 s: the broker's queue, the notices not yet fanned out, the pending
    deliveries, the mails received; and the CPU of the deployment database's backends."""

    def __init__(self, db_url: str, db_name: str, broker: str, q_name: str, redis_url: str, mail):
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(db_url, autocommit=True)
        self.db_name, self.broker, self.q_name, self.mail = db_name, broker, q_name, mail
        self.redis = None
        if broker == "redis":
            import redis

            self.redis = redis.Redis.from_url(redis_url)
        self.lock = threading.Lock()
        self.samples: list[dict] = []
        self.pg_cpu: dict[int, float] = {}  # backend pid -> CPU last seen
        self.halt = threading.Event()

    def _count(self, sql: str, *params) -> int | None:
        try:
            return self.conn.execute(sql, params).fetchone()[0]
        except Exception:  # a table another commit does not have
            return None

    def sample(self) -> dict:
        with self.lock:
            if self.redis is not None:
                broker = self.redis.llen(f"django_q:{self.q_name}:q")
            else:
                broker = self._count(
                    "SELECT count(*) FROM django_q_ormq WHERE key = %s", self.q_name
                )
            s = {
                "t": time.monotonic(),
                "broker": broker,
                "notices": self._count(
                    "SELECT count(*) FROM notifications_notice WHERE fanned_out_at IS NULL"
                ),
                "deliveries": self._count(
                    # due ones: a coalesced summary waits for its minute to close on purpose
                    "SELECT count(*) FROM notifications_delivery "
                    "WHERE status = 'pending' AND next_attempt_at <= now()"
                ),
                "mails": self.mail.received,
            }
            pids = self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.db_name],
            ).fetchall()
            for (pid,) in pids:
                fields = _stat(pid)
                if fields:
                    self.pg_cpu[pid] = (int(fields[11]) + int(fields[12])) / CLK
            self.samples.append(s)
            return s

    def pg_total(self) -> float:
        self.sample()
        return sum(self.pg_cpu.values())

    def run(self) -> None:
        while not self.halt.wait(0.25):
            try:
                self.sample()
            except Exception as exc:  # the database going away at the end
                print(f"  (monitor: {exc!r})", flush=True)
                return

    def close(self) -> None:
        self.halt.set()
        self.join(5)
        with self.lock:
            self.conn.close()


def backlog(s: dict) -> int:
    return sum(s[k] or 0 for k in ("broker", "notices", "deliveries"))


def depth(s: dict) -> str:
    return f"{s['broker']} tasks, {s['notices']} notices, {s['deliveries']} deliveries pending"


# --- a deployment ------------------------------------------------------------------------------


@dataclass
class Deployment:
    cfg: web.Config
    broker: str  # orm | redis
    port: int
    workers: int
    redis_url: str
    mail: Mailbox
    var: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hitl-deployed-")))
    procs: list = field(default_factory=list)  # (Popen, group)
    ports: dict = field(default_factory=dict)
    monitor: Monitor | None = None

    def __post_init__(self) -> None:
        self.log = open(self.var / "processes.log", "w")  # noqa: SIM115

    @property
    def q_name(self) -> str:
        return f"hitl-bench-deployed-{self.cfg.name}"

    def prepare(self, url: str) -> None:
        self.cfg.env = {
            "HITL_VAR_DIR": str(self.var),
            "HITL_Q_NAME": self.q_name,
            "EMAIL_URL": self.mail.url,
            "DEFAULT_FROM_EMAIL": "portal@example.com",
            **({"HITL_NOTIFY_COALESCE_PER_MINUTE": COALESCE} if COALESCE is not None else {}),
        }
        if self.broker == "redis":
            import redis

            redis.Redis.from_url(self.redis_url).flushdb()  # our db number only
            self.cfg.env["REDIS_URL"] = self.redis_url
        web.prepare(self.cfg, url, clients=16, reviewers=8)  # DB_POOL=1: one ASGI app
        path = [str(KNOBS)] if KNOBS.exists() else []
        self.cfg.env["PYTHONPATH"] = ":".join([*path, web.code_path(self.cfg.tree)])
        self.cfg.port = self.cfg.wait_port = self.port  # runportal: one app, long-poll too

    def start(self, topology: str) -> None:
        env = {**self.cfg.env, "HITL_SITE_URL": f"http://127.0.0.1:{self.port}"}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.var / "prometheus")
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
        for key in ("DB_POOL", "DB_CONN_MAX_AGE"):
            env.pop(key, None)
        persistent = {**env, "DB_CONN_MAX_AGE": "600"}
        manage = [sys.executable, "manage.py"]
        if topology == "runportal":
            # One env for every child: DB_POOL=1 (the ASGI setting) breaks the ORM broker's
            # forked pusher, DB_CONN_MAX_AGE leaks a connection per ASGI request thread: the
            # default, a connection per request and per task.
            cmd = [*manage, "runportal", "--no-demo", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(self.workers)]  # fmt: skip
            self.spawn("runportal", cmd, env)
        else:  # docs/production.md: the API on WSGI, long-poll on ASGI, per-process settings
            self.cfg.wait_port = self.port + 1
            self.spawn("web", granian_command("127.0.0.1", self.port, self.workers), persistent)
            cmd = uvicorn_command("127.0.0.1", self.cfg.wait_port, "--log-level", "warning")
            self.spawn("web", cmd, {**env, "DB_POOL": "1"})
            self.spawn("portald", [*manage, "portald"], persistent)
            self.spawn("cluster", [*manage, "qcluster"], persistent)
        for proc, group in self.procs:
            if group in ("web", "runportal"):
                servers.wait_healthy(proc, self.ports[proc.pid], 180)
        deadline = time.monotonic() + 60
        while set(self.groups().values()) < {"web", "portald", "cluster"}:
            if time.monotonic() > deadline or any(p.poll() is not None for p, _ in self.procs):
                raise RuntimeError(f"processes: {self.groups()} (log: {self.var})")
            time.sleep(0.2)
        db = self.cfg.env["DATABASE_URL"]
        self.monitor = Monitor(db, self.cfg.db, self.broker, self.q_name, self.redis_url, self.mail)
        self.monitor.start()
        self.warm_up()

    def spawn(self, group: str, cmd: list[str], env: dict) -> None:
        proc = subprocess.Popen(
            cmd,
            cwd=self.cfg.tree,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: what we stop is only what it started
        )
        self.procs.append((proc, group))
        self.ports[proc.pid] = int(cmd[cmd.index("--port") + 1]) if "--port" in cmd else 0

    def groups(self) -> dict[int, str]:
        """The processes started, by what they run (runportal: its children)."""
        out = {}
        for proc, group in self.procs:
            if group != "runportal":
                out[proc.pid] = group
                continue
            for pid in web.tree_pids([proc.pid]):
                fields = _stat(pid)
                if not fields or int(fields[1]) != proc.pid:
                    continue
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                out[pid] = next((g for word, g in CHILDREN if word in cmdline.decode()), "other")
        return out

    def cpu(self) -> dict[str, float]:
        out = {"web": 0.0, "cluster": 0.0, "portald": 0.0}
        for pid, group in self.groups().items():
            out[group] = out.get(group, 0.0) + tree_cpu(pid)
        out["postgres"] = self.monitor.pg_total()
        out["smtp"] = tree_cpu(self.mail.proc.pid)
        out["machine"] = web.machine_busy()
        return out

    def drain(self, cap: float) -> float | None:
        """Seconds until the queue is empty (None: not within `cap`)."""
        t0 = time.monotonic()
        while True:
            s = self.monitor.sample()
            if backlog(s) == 0 and s["broker"] is not None:
                return time.monotonic() - t0
            if time.monotonic() - t0 > cap:
                return None
            time.sleep(0.25)

    def warm_up(self) -> None:
        """One request through the whole path: created, fanned out, 8 mails accepted."""
        mails = self.mail.received

        async def create() -> int:
            conn = await web.Connection("127.0.0.1", self.port).open()
            status, _ = await conn.request(*web.create_request(self.cfg)(0, 0))
            conn.close()
            return status

        if (status := asyncio.run(create())) != 201:
            raise RuntimeError(f"{self.cfg.name}: a create answered {status}")
        deadline = time.monotonic() + 90
        while self.mail.received < mails + 8 or self.drain(0) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.cfg.name}: the cluster sent {self.mail.received - mails} mails and "
                    f"left {depth(self.monitor.sample())} after 90 s (log: {self.var})"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        for proc, _group in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # runportal stops its children
        for proc, _group in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        sessions = {proc.pid for proc, _group in self.procs}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:  # a child left behind (orphans go to init): only those of our sessions
                pid = int(stat.parent.name)
                if os.getsid(pid) in sessions:
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        self.procs = []
        self.log.close()

    def drop(self, url: str) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.cfg.db} WITH (FORCE)")


# --- phases ------------------------------------------------------------------------------------


def per_op(cpu0: dict, cpu1: dict, ops: int) -> dict:
    groups = ("web", "cluster", "portald", "postgres")
    out = {g: (cpu1[g] - cpu0[g]) / max(ops, 1) * 1000 for g in (*groups, "smtp", "machine")}
    out["total"] = sum(out[g] for g in groups)
    return out


def run_phase(dep: Deployment, name: str, load, cap: float) -> dict:
    """`load()` returns (result dict, ops); then the queue gets `cap` s to drain."""
    start = dep.monitor.sample()
    load0, cpu0 = loadavg(), dep.cpu()
    result, ops = load()
    load1 = loadavg()
    stopped = dep.monitor.sample()
    drained = dep.drain(cap)
    cpu1 = dep.cpu()
    result.update(
        ops=ops,
        load=(load0, load1),
        backlog_at_start=backlog(start),
        backlog_at_stop=backlog(stopped),
        drained=drained,
        cpu=per_op(cpu0, cpu1, ops),
        mails=dep.monitor.sample()["mails"] - start["mails"],
    )
    tail = (
        f"drained in {drained:.1f} s"
        if drained is not None
        else f"NOT drained in {cap:.0f} s: {depth(dep.monitor.sample())}"
    )
    print(f"    [{name}] load {load0} → {load1}; backlog at stop {backlog(stopped)}, {tail}")
    return result


def counting(into: list | None = None):
    n = [0]

    def on_body(body: bytes) -> None:
        n[0] += 1
        if into is not None and (match := web.ID.search(body)):
            into.append(match.group(1).decode())

    return n, on_body


def probe(dep: Deployment, rate: float, seconds: float, cap: float, series: bool = False) -> dict:
    """Offered `rate` creates/s for `seconds`: held if the queue drains within 10 s of the
    load stopping and the web server kept up (≥ 90 % achieved, no errors)."""
    mails0, load0 = dep.mail.received, loadavg()
    t0 = time.monotonic()
    created, count = counting()
    r = asyncio.run(web.paced(dep.port, rate, seconds, web.create_request(dep.cfg), count))
    at_stop = dep.monitor.sample()
    drained = dep.drain(DRAIN_WINDOW)
    held = (
        drained is not None
        and drained <= DRAIN_WINDOW
        and r["rps"] >= 0.9 * rate
        and not r["errors"]
    )
    samples = [s for s in dep.monitor.samples if t0 <= s["t"] <= time.monotonic()]
    peak = max(samples, key=backlog) if samples else at_stop
    out = {
        "rate": rate,
        "seconds": seconds,
        "held": held,
        "achieved": r["rps"],
        "p99": r["p99"],
        "errors": r["errors"],
        "at_stop": backlog(at_stop),
        "peak": {k: peak[k] for k in ("broker", "notices", "deliveries")},
        "drained": drained,
        "load": (load0, loadavg()),
        "created": created[0],
        "mails_per_create": (dep.mail.received - mails0) / max(1, created[0]),
    }
    if series:
        step = max(1.0, seconds / 10)
        points, next_t = [], t0
        for s in samples:
            if s["t"] >= next_t:
                points.append((round(s["t"] - t0), s["broker"], s["deliveries"], s["notices"]))
                next_t += step
        out["series"] = points
    verdict = "held" if held else "FAILED"
    print(
        f"    {rate:6.1f}/s for {seconds:.0f} s: {verdict}; achieved {r['rps']:.1f}/s, "
        f"p99 {r['p99']:.0f} ms; queue at stop {backlog(at_stop)}, peak {backlog(peak)}, "
        + (f"drained in {drained:.1f} s" if drained is not None else "not drained in 10 s")
        + f"; load {out['load'][0]} → {out['load'][1]}",
        flush=True,
    )
    if not held:  # the next probe starts from an empty queue
        left = dep.drain(cap)
        if left is None:
            print(f"    (still {depth(dep.monitor.sample())} after {cap:.0f} s)", flush=True)
    return out


def sustain(dep: Deployment, args) -> dict:
    trials = []
    lo, hi, rate = 0.0, None, args.start_rate
    while rate <= args.max_rate:
        trials.append(probe(dep, rate, args.probe_seconds, args.drain_cap))
        if not trials[-1]["held"]:
            hi = rate
            break
        lo, rate = rate, rate * 2
    while lo == 0 and rate / 2 >= args.min_rate:  # even the start rate failed
        rate /= 2
        trials.append(probe(dep, rate, args.probe_seconds, args.drain_cap))
        lo, hi = (rate, hi) if trials[-1]["held"] else (0.0, rate)
    for _ in range(args.bisect):
        if hi is None or lo == 0 or (hi - lo) / lo < 0.1:
            break
        mid = round((lo + hi) / 2, 2)
        trials.append(probe(dep, mid, args.probe_seconds, args.drain_cap))
        lo, hi = (mid, hi) if trials[-1]["held"] else (lo, mid)
    out = {"trials": trials, "probe_rate": lo, "rate": 0.0, "confirmed": None}
    if lo:
        print(f"    confirming {lo:.1f}/s for {args.sustain_seconds:.0f} s", flush=True)
        c = probe(dep, lo, args.sustain_seconds, args.drain_cap, series=True)
        out["confirmed"] = c
        out["rate"] = lo if c["held"] else 0.0
        print("      t(s)  broker tasks  pending deliveries  notices not fanned out")
        for t, b, d, n in c["series"]:
            print(f"      {t:4d}  {b!s:>12}  {d!s:>18}  {n!s:>22}")
    return out


def measure(dep: Deployment, args) -> dict:
    cfg, out = dep.cfg, {}
    phases = set(args.phases.split(","))
    if "sustain" in phases:
        print("  sustained create rate (queue drained within 10 s of the load stopping):")
        out["sustain"] = sustain(dep, args)
    pending: list[str] = []
    if phases & {"create16", "decide16"}:

        def creates():
            n, keep = counting(pending)
            r = asyncio.run(web.closed(dep.port, 16, args.duration, web.create_request(cfg), keep))
            return r, n[0]

        out["create16"] = run_phase(dep, "create16", creates, args.drain_cap)
        print(web.line("creates, 16 clients", out["create16"]) + cpu_line(out["create16"]))
    if "decide16" in phases:

        def decisions():
            n, count = counting()
            r = asyncio.run(
                web.closed(dep.port, 16, args.duration, web.decision_request(cfg, pending), count)
            )
            return r, n[0]

        out["decide16"] = run_phase(dep, "decide16", decisions, args.drain_cap)
        print(web.line("decisions, 16 clients", out["decide16"]) + cpu_line(out["decide16"]))
        if not pending:
            print("    (every pending checkpoint was decided before the phase ended)")
    if "wake" in phases:

        def wake():
            r = asyncio.run(web.wake_latency(cfg, args.samples, args.wake_background))
            bg = r.pop("background") or {}
            r["background_rps"], r["background_p99"] = bg.get("rps"), bg.get("p99")
            return r, args.samples

        out["wake"] = w = run_phase(dep, "wake", wake, args.drain_cap)
        print(
            f"  {'decision → wake':<28} p50 {w['p50']:6.1f} ms  p99 {w['p99']:6.1f} ms  "
            f"({w['n']} samples; creates meanwhile {w['background_rps'] or 0:.0f}/s of "
            f"{args.wake_background:.0f}/s offered, p99 {w['background_p99'] or 0:.0f} ms)",
            flush=True,
        )
    if "open" in phases:
        for rate in args.open_rates:

            def paced(rate=rate):
                n, count = counting()
                r = asyncio.run(
                    web.paced(
                        dep.port, rate, args.duration, web.create_request(cfg), count,
                        give_up=args.duration + 10,
                    )
                )  # fmt: skip
                return r, n[0]

            out[f"open{rate:g}"] = r = run_phase(dep, f"open {rate:g}/s", paced, args.drain_cap)
            print(web.line(f"creates, open loop {rate:g}/s", r), flush=True)
    if "statements" in phases and dep.broker == args.brokers.split(",")[0]:  # deterministic
        out["statements"] = statements(dep)
        print(f"  statements: {out['statements']}", flush=True)
    return out


def cpu_line(r: dict) -> str:
    c = r["cpu"]
    return (
        f"\n  {'':<28} CPU/op {c['total']:.1f} ms = web {c['web']:.1f} + cluster "
        f"{c['cluster']:.1f} + portald {c['portald']:.1f} + PostgreSQL {c['postgres']:.1f} "
        f"(smtp receiver {c['smtp']:.1f}, machine {c['machine']:.1f}); "
        f"{r['mails'] / max(1, r['ops']):.1f} mails/op"
    )


def statements(dep: Deployment) -> dict:
    """The tree's own bench/statements.py, on the deployment's database (no figure if that
    tree has none, or it fails)."""
    script = dep.cfg.tree / "bench" / "statements.py"
    if not script.exists():
        return {}
    env = {**dep.cfg.env, "ALLOWED_HOSTS": "testserver,127.0.0.1"}
    try:
        out = subprocess.run(
            [sys.executable, str(script)], cwd=dep.cfg.tree, env=env,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {}
    if out.returncode:
        print(f"    (bench/statements.py failed: {out.stderr.strip()[-300:]})")
    found = re.findall(r"^(.+?): (\d+) statements", out.stdout, re.M)
    return {name: int(n) for name, n in found}


# --- the run -----------------------------------------------------------------------------------


def checkout(ref: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"hitl-deployed-{ref}-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(path), ref], cwd=ROOT, check=True
    )
    return path


def remove_checkout(path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


ROWS = [
    # (label, getter)
    ("creates, 16 clients: req/s", lambda r: r["create16"]["rps"]),
    ("  p50 ms", lambda r: r["create16"]["p50"]),
    ("  p99 ms", lambda r: r["create16"]["p99"]),
    ("  queue drained after (s)", lambda r: r["create16"]["drained"]),
    ("sustained creates/s (confirmed)", lambda r: r["sustain"]["rate"]),
    ("  best probe rate /s", lambda r: r["sustain"]["probe_rate"]),
    ("  peak broker tasks", lambda r: r["sustain"]["confirmed"]["peak"]["broker"]),
    ("  peak pending deliveries", lambda r: r["sustain"]["confirmed"]["peak"]["deliveries"]),
    ("  mails per create", lambda r: r["sustain"]["confirmed"]["mails_per_create"]),
    *[
        row
        for rate in (50, 100, 150)
        for row in (
            (f"open {rate}/s: achieved /s", lambda r, k=f"open{rate}": r[k]["rps"]),
            ("  p99 ms", lambda r, k=f"open{rate}": r[k]["p99"]),
        )
    ],
    ("decisions, 16 clients: req/s", lambda r: r["decide16"]["rps"]),
    ("  p99 ms", lambda r: r["decide16"]["p99"]),
    ("decision → wake p99 ms", lambda r: r["wake"]["p99"]),
    *[
        (f"CPU/create ms: {g}", lambda r, g=g: r["create16"]["cpu"][g])
        for g in ("web", "cluster", "portald", "postgres", "total")
    ],
    *[
        (f"CPU/decision ms: {g}", lambda r, g=g: r["decide16"]["cpu"][g])
        for g in ("web", "cluster", "portald", "postgres", "total")
    ],
    ("statements/create", lambda r: r["statements"]["create-checkpoint"]),
    ("statements/decision", lambda r: r["statements"]["decision"]),
    ("statements/fan-out task", lambda r: r["statements"]["its fan-out (task)"]),
    ("load avg at start", lambda r: r["load"][0]),
    ("load avg at end", lambda r: r["load"][1]),
]


def table(results: dict, brokers: list[str], names: list[str]) -> None:
    """One row per figure; per broker a column per tree and, with two, after / before."""

    def fmt(v) -> str:
        if v is None:
            return "–"
        return v if isinstance(v, str) else f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"

    width = 18
    head = ""
    for broker in brokers:
        head += "".join(
            f"{broker + (': before' if i == 0 and len(names) == 2 else ': after'):>{width}}"
            for i, _n in enumerate(names)
        )
        head += f"{'ratio':>{width // 2}}" if len(names) == 2 else ""
    print(f"\n{'':<34}{head}")
    for label, getter in ROWS:
        cells = ""
        for broker in brokers:
            vals = []
            for name in names:
                try:
                    vals.append(getter(results[(name, broker)]))
                except (KeyError, TypeError):
                    vals.append(None)
            cells += "".join(f"{fmt(v):>{width}}" for v in vals)
            if len(names) == 2:
                b, a = vals
                ok = all(isinstance(v, int | float) for v in vals) and b
                cells += f"{f'×{a / b:.2f}' if ok else '–':>{width // 2}}"
        print(f"{label:<34}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-ref", default="16693ed", help="'' : this tree only")
    parser.add_argument("--brokers", default="orm,redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument(
        "--topology",
        default="production",
        choices=["production", "runportal"],
        help="production: runportal's processes with docs/production.md's settings (granian "
        "WSGI + uvicorn long-poll + portald + qcluster); runportal: `manage.py runportal`",
    )
    parser.add_argument("--web-workers", type=int, default=2, help="web server processes")
    parser.add_argument("--phases", default="sustain,create16,decide16,wake,open,statements")
    parser.add_argument("--duration", type=float, default=10, help="s per load phase")
    parser.add_argument("--sustain-seconds", type=float, default=300)
    parser.add_argument("--probe-seconds", type=float, default=15)
    parser.add_argument("--start-rate", type=float, default=5)
    parser.add_argument("--min-rate", type=float, default=1)
    parser.add_argument("--max-rate", type=float, default=640)
    parser.add_argument("--bisect", type=int, default=2)
    parser.add_argument(
        "--coalesce-per-minute",
        default=None,
        help="HITL_NOTIFY_COALESCE_PER_MINUTE for the deployments (0: every email sent; "
        "default: the portal's own, 10 where the code coalesces)",
    )
    parser.add_argument("--drain-cap", type=float, default=30, help="s a phase's queue may drain")
    parser.add_argument("--open-rates", default="50,100,150")
    parser.add_argument("--samples", type=int, default=60, help="decision → wake samples")
    parser.add_argument("--wake-background", type=float, default=20, help="creates/s meanwhile")
    parser.add_argument("--json", default="", help="write the results to this file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shorter everything (sustain 30 s, probes 8 s, phases 5 s): under ~6 minutes",
    )
    args = parser.parse_args()
    global COALESCE
    COALESCE = args.coalesce_per_minute
    if args.quick:  # what was not given explicitly
        quick = dict(sustain_seconds=30, probe_seconds=8, duration=5, bisect=1, drain_cap=15)
        for name, value in {**quick, "samples": 30}.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    args.open_rates = [float(r) for r in args.open_rates.split(",") if r]
    url = os.environ.get("DATABASE_URL")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL=postgres://... (the bench makes its own databases there)")
    if "redis" in args.brokers and not urlparse(args.redis_url).path.strip("/").isdigit():
        raise SystemExit("--redis-url must name a db number of its own (it is flushed)")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    os.environ.pop("REDIS_URL", None)  # the Redis broker is --redis-url, per deployment

    mail = Mailbox(SMTP_PORT)
    trees: dict[str, Path] = {}
    results: dict = {}
    dep: Deployment | None = None
    started = time.monotonic()
    try:
        if args.before_ref:
            trees[f"before ({args.before_ref})"] = checkout(args.before_ref)
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        trees[f"this tree ({head})"] = ROOT
        brokers = [b for b in args.brokers.split(",") if b]
        print(
            f"PostgreSQL; {os.cpu_count()} CPUs; {TOPOLOGY[args.topology]} "
            f"(web x{args.web_workers}); 8 reviewers emailed per request; "
            f"load average {loadavg()}",
            flush=True,
        )
        port = PORT_BASE
        for broker in brokers:
            for n, (name, tree) in enumerate(trees.items()):
                key = f"{'before' if n == 0 and args.before_ref else 'after'}_{broker}"
                cfg = web.Config(
                    key, name, tree, "uvicorn", False, f"hitl_bench_deployed_{key}"
                )  # "uvicorn": prepare() gives it DB_POOL=1, the ASGI setting
                dep = Deployment(cfg, broker, port, args.web_workers, args.redis_url, mail)
                port += 2
                print(f"\n{name}, {broker} broker", flush=True)
                dep.prepare(url)
                dep.start(args.topology)
                load0 = loadavg()
                try:
                    results[(name, broker)] = measure(dep, args)
                    results[(name, broker)]["load"] = (load0, loadavg())
                finally:
                    dep.stop()
                    dep.drop(url)
                    dep = None
        table(results, brokers, list(trees))
        print(f"\ntotal {time.monotonic() - started:.0f} s; load average {loadavg()}")
        if args.json:
            Path(args.json).write_text(
                json.dumps({f"{k[0]} | {k[1]}": v for k, v in results.items()}, indent=1)
            )
    finally:
        if dep is not None:
            dep.stop()
            dep.drop(url)
        mail.stop()
        for tree in trees.values():
            if tree != ROOT:
                remove_checkout(tree)


if __name__ == "__main__":
    main()
