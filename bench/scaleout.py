"""Scale-out: two application hosts, one PostgreSQL and one Redis, on this one machine.

Each host is a network namespace made here (`ip netns`, a veth pair, 10.200.<n>.0/24, its own
hostname through `unshare --uts`) running what docs/production.md runs on an application
host: the WSGI server as `hitlportal.servers.granian_command` builds it (2 workers x 4
threads), `manage.py qcluster` (Redis broker) and `manage.py portald` (the ledger's sequencer
and the deadline timer). The load comes from the root namespace, over the veths.

How a namespace reaches PostgreSQL and Redis: both listen on the host's 127.0.0.1 only, which
no other namespace can route to, and PostgreSQL trusts 127.0.0.1 alone. Making it listen on a
veth address would change `listen_addresses` (a restart) and `pg_hba.conf` (a trusted
10.200/16): permanent changes to a shared server. Instead Debian's `socat` (apt-get install -y
socat) listens on each host's gateway address (10.200.<n>.1:18532 -> 127.0.0.1:5432,
:18579 -> 127.0.0.1:6379): the hosts speak TCP over their veth as over a network, PostgreSQL
sees local clients (each process names itself in `application_name`, so the leaders can be
told apart), and nothing outside the benchmark changes. socat's CPU is reported apart: a real
network costs the hosts nothing of it.

Phases, each on a fresh database `hitl_bench_scale_<phase>` and Redis db 8 (flushed):
  1host   host A alone; creates paced at --rate for --duration s from 8 agents, each create
          notifying 2 reviewers by email (a real SMTP receiver, aiosmtpd); measured until every
          mail has arrived: achieved creates/s, p50/p99, CPU per create by process kind
          (web, cluster, portald on the hosts; PostgreSQL backends of the database; socat)
  2hosts  hosts A and B, the same offered load spread over both
  1host-x2  the control: two hosts' processes (two of each) in A's namespace, the load spread
          over both web servers; as 2hosts, less a second namespace, veth and socat
  kill    hosts B then A (B takes both leaders), creates and decisions (each create decided
          1 s after its 201) spread over both; at half time every process of B gets SIGKILL.
          The client fails over to A with the same Idempotency-Key (what a load balancer's
          retry does). Checked: every create the client got a 201 for exists once and no title
          twice; every decision once; every checkpoint's two mails and its decision's webhook
          arrived once (or the doubles are counted); who held the sequencer's advisory lock and
          the deadline timer's lease before and after, and when A took each over.

    sudo .venv/bin/python bench/scaleout.py                      # all three phases
    sudo .venv/bin/python bench/scaleout.py --phases 1host,2hosts,1host   # bracketed: drift
    sudo .venv/bin/python bench/scaleout.py --phases kill --rate 6 --duration 30
    sudo .venv/bin/python bench/scaleout.py --cleanup             # remove what a killed run left

Needs root (namespaces), PostgreSQL on 127.0.0.1:5432 (DATABASE_URL to override), Redis on
127.0.0.1:6379, socat. Ports 18500-18599 on the 10.200.x addresses only. Everything made here
(namespaces, veths, processes, databases, Redis db 8) is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _http import Connection  # noqa: E402
from _proc import tree_pids  # noqa: E402

from hitlportal.servers import granian_command  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ID = re.compile(rb'"id":"([0-9a-f-]{36})"')
PREFIX = "hitlb"
HOSTS = {"a": "10.200.1", "b": "10.200.2"}
WEB_PORT, PG_PORT, REDIS_PORT, SMTP_PORT, HOOK_PORT = 18500, 18532, 18579, 18525, 18580
SINK = HOSTS["a"] + ".1"  # the receivers, on host A's gateway (B reaches it by its route)
REDIS_DB = 8
SEQUENCER_KEY = 0x4C4447  # core.ledger.sequencer.LOCK_KEY
DEADLINE_LEASE = "hitl-deadline-timer"  # approvals.deadlines.LEASE
REVIEWERS = 2
AGENTS = 8


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


# --- the network --------------------------------------------------------------------------


def net_up(name: str) -> None:
    ns, net = f"{PREFIX}-{name}", HOSTS[name]
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", f"{ns}-h", "type", "veth", "peer", "name", f"{ns}-n")
    sh("ip", "link", "set", f"{ns}-n", "netns", ns)
    sh("ip", "addr", "add", f"{net}.1/24", "dev", f"{ns}-h")
    sh("ip", "link", "set", f"{ns}-h", "up")
    inside = ("ip", "netns", "exec", ns, "ip")
    sh(*inside, "addr", "add", f"{net}.2/24", "dev", f"{ns}-n")
    sh(*inside, "link", "set", f"{ns}-n", "up")
    sh(*inside, "link", "set", "lo", "up")
    # The host's other addresses (the receivers on A's gateway) through this veth.
    sh(*inside, "route", "add", "default", "via", f"{net}.1")


def net_down() -> None:
    """Every namespace and veth this benchmark names, whoever left them."""
    for name in HOSTS:
        sh("ip", "link", "del", f"{PREFIX}-{name}-h", check=False)
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        ns = line.split()[0] if line.strip() else ""
        if ns.startswith(f"{PREFIX}-"):
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sh("ip", "netns", "del", ns, check=False)


# --- receivers: SMTP and webhooks, on a gateway address ------------------------------------


class Sink:
    """An SMTP server (aiosmtpd) and an HTTP server for webhooks on `SINK`; keeps what arrives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.lock = threading.Lock()
        self.mails: list[tuple[str, frozenset[bytes]]] = []  # (recipient, uuids in the mail)
        self.hooks: list[tuple[str, str]] = []  # (X-HITL-Delivery, checkpoint id)
        sink = self

        class Smtp:
            async def handle_DATA(self, server, session, envelope):
                mail = message_from_bytes(envelope.content, policy=policy.default)
                text = "".join(
                    part.get_content()
                    for part in mail.walk()
                    if part.get_content_maintype() == "text"
                )
                ids = frozenset(UUID.findall(text.encode()))
                with sink.lock:
                    for rcpt in envelope.rcpt_tos:
                        sink.mails.append((rcpt, ids))
                return "250 OK"

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    cp = json.loads(body)["checkpoint"]["id"]
                except (ValueError, KeyError, TypeError):
                    cp = ""
                with sink.lock:
                    sink.hooks.append((self.headers.get("X-HITL-Delivery", ""), cp))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.smtp = Controller(Smtp(), hostname=SINK, port=SMTP_PORT)
        self.smtp.start()
        self.http = ThreadingHTTPServer((SINK, HOOK_PORT), Hook)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def clear(self) -> None:
        with self.lock:
            self.mails.clear()
            self.hooks.clear()

    def stop(self) -> None:
        self.smtp.stop()
        self.http.shutdown()
        self.http.server_close()


# --- processes -------------------------------------------------------------------------------


@dataclass
class Host:
    """An application host: `name` (its processes' names), in the namespace `net` (two hosts
    may share one: the control that has two hosts' processes without a second namespace)."""

    name: str
    net: str = ""
    port: int = WEB_PORT
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    metrics: str = ""  # its PROMETHEUS_MULTIPROC_DIR

    def __post_init__(self):
        self.net = self.net or self.name

    @property
    def ns(self) -> str:
        return f"{PREFIX}-{self.net}"

    @property
    def addr(self) -> str:
        return HOSTS[self.net] + ".2"

    @property
    def gateway(self) -> str:
        return HOSTS[self.net] + ".1"


def base_env(db: str) -> dict:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": ",".join(h + ".2" for h in HOSTS.values()) + ",127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "LOG_LEVEL": "WARNING",
        "HITL_API_THROTTLE_AGENT": "1000000/m",
        "HITL_API_THROTTLE_USER": "1000000/m",
        "HITL_LEDGER_SIGNING_KEY": __import__("base64").b64encode(os.urandom(32)).decode(),
        "HITL_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "HITL_ALLOW_PRIVATE_URLS": "1",  # the receivers are on 10.200.1.1
        "EMAIL_URL": f"smtp://{SINK}:{SMTP_PORT}",
        "DB_CONN_MAX_AGE": "600",
        "DJANGO_SETTINGS_MODULE": "hitlportal.settings",
        "HITL_BENCH_DB": db,
    }


def host_env(env: dict, host: Host, kind: str) -> dict:
    db = env["HITL_BENCH_DB"]
    app = f"hitl-{host.name}-{kind}"
    return {
        **env,
        "DATABASE_URL": f"postgres://postgres@{host.gateway}:{PG_PORT}/{db}?application_name={app}",
        "REDIS_URL": f"redis://{host.gateway}:{REDIS_PORT}/{REDIS_DB}",
        "HITL_SITE_URL": f"http://{host.addr}:{host.port}",
        "PROMETHEUS_MULTIPROC_DIR": env[f"HITL_BENCH_METRICS_{host.name}"],
    }


def start_host(host: Host, env: dict) -> None:
    host.metrics = tempfile.mkdtemp(prefix="hitlb-metrics-")  # removed by stop_host
    env = {**env, f"HITL_BENCH_METRICS_{host.name}": host.metrics}
    manage = str(ROOT / "manage.py")
    commands = {
        "web": granian_command(host.addr, host.port, 2, "--backlog", "4096", threads=4),
        "cluster": [sys.executable, manage, "qcluster"],
        "portald": [sys.executable, manage, "portald"],
    }
    for kind, cmd in commands.items():
        # In the host's namespace, under its own hostname (the lease holder names it), in a
        # process group of its own (a SIGKILL reaches its workers too).
        wrapped = [
            "ip", "netns", "exec", host.ns, "unshare", "--uts", "sh", "-c",
            'hostname "$0" && exec "$@"', f"app-{host.name}", *cmd,
        ]  # fmt: skip
        host.procs[kind] = subprocess.Popen(
            wrapped, cwd=ROOT, env=host_env(env, host, kind), start_new_session=True
        )
    wait_healthy(host)


def wait_healthy(host: Host, timeout: float = 40) -> None:
    async def probe() -> bool:
        try:
            conn = await Connection(host.addr, host.port).open()
        except OSError:
            return False
        try:
            status, _ = await asyncio.wait_for(conn.request("GET", "/api/v1/health/"), 2)
            return status == 200
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            return False
        finally:
            conn.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kind, proc in host.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"host {host.name}: {kind} exited with {proc.returncode}")
        if asyncio.run(probe()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"host {host.name} did not answer within {timeout:.0f} s")


def kill_host(host: Host, sig: int = signal.SIGKILL) -> None:
    pids = tree_pids([p.pid for p in host.procs.values()])
    for proc in host.procs.values():
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    for pid in pids:  # anything that left the process group
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_host(host: Host) -> None:
    kill_host(host, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in host.procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    kill_host(host, signal.SIGKILL)
    for proc in host.procs.values():
        proc.wait()
    host.procs.clear()
    if host.metrics:
        shutil.rmtree(host.metrics, ignore_errors=True)


def start_socat(host: Host) -> list[subprocess.Popen]:
    from urllib.parse import urlparse

    pg = urlparse(admin_url())
    out = []
    for port, target in (
        (PG_PORT, f"{pg.hostname}:{pg.port or 5432}"),
        (REDIS_PORT, "127.0.0.1:6379"),
    ):
        out.append(
            subprocess.Popen(
                [
                    "socat",
                    f"TCP-LISTEN:{port},bind={host.gateway},reuseaddr,fork,backlog=1024,nodelay",
                    f"TCP:{target},nodelay",
                ],
                start_new_session=True,
            )
        )
    return out


# --- CPU -------------------------------------------------------------------------------------


def ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


class Sampler:
    """CPU by group of processes, sampled every 0.25 s so that short-lived and killed
    processes count up to their last sample; `window()` opens and closes a measurement."""

    def __init__(self, groups):
        self.groups = groups  # () -> {group: [pid, ...]}
        self.seen: dict[tuple[str, int], tuple[int, int]] = {}  # (group, pid) -> (first, last)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self, fresh: bool) -> None:
        for group, pids in self.groups().items():
            for pid in pids:
                now = ticks(pid)
                if now is None:
                    continue
                first, _ = self.seen.get((group, pid), (0 if not fresh else now, now))
                self.seen[(group, pid)] = (first, now)

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.sample(fresh=False)

    def start(self) -> None:
        self.sample(fresh=True)  # what already ran before the window does not count
        self.thread.start()

    def finish(self) -> dict[str, float]:
        self.stop.set()
        self.thread.join()
        self.sample(fresh=False)
        out: dict[str, float] = {}
        for (group, _pid), (first, last) in self.seen.items():
            out[group] = out.get(group, 0.0) + (last - first) / CLK
        return out


def redis_pid() -> int | None:
    out = sh("pgrep", "-x", "redis-server", check=False).stdout.split()
    return int(out[0]) if out else None


# --- the database: set-up, checks, leaders ----------------------------------------------------

SETUP = r"""
import json, os, secrets, django
django.setup()
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
from agents.models import Agent
from agents.services import AGENT_KEYS
from agents.transitions import run_start
from approvals.services import USER_TOKENS
from audit.events import Actor
from notifications.models import RoleChannel
actor = Actor.system("bench")
pairs = []
for i in range(int(os.environ["AGENTS"])):
    agent = Agent.objects.create(
        slug=f"bench-{i}", name=f"Bench {i}", callback_url=os.environ["HOOK_URL"] + f"/{i}"
    )
    run = run_start(agent=agent, task="bench", actor=actor)
    pairs.append([AGENT_KEYS.create(agent, actor), str(run.pk)])
ops = Group.objects.get_or_create(name="ops")[0]
ops.permissions.add(*Permission.objects.filter(codename="decide_checkpoint"))
RoleChannel.objects.create(role="ops", kind="email")
tokens = []
for i in range(int(os.environ["REVIEWERS"])):
    user = User.objects.create_user(
        f"reviewer-{i}", f"reviewer-{i}@example.com", secrets.token_urlsafe(), is_staff=True
    )
    user.groups.add(ops)
    tokens.append(USER_TOKENS.create(user, scope="decide"))
print(json.dumps({"pairs": pairs, "reviewers": tokens}))
"""


def admin_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def db_url(db: str) -> str:
    from urllib.parse import urlparse, urlunparse

    return urlunparse(urlparse(admin_url())._replace(path=f"/{db}"))


def create_db(db: str) -> None:
    import psycopg

    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {db}")


def drop_dbs() -> None:
    import psycopg

    with psycopg.connect(admin_url(), autocommit=True) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'hitl_bench_scale_%'"
        ).fetchall()
        for (name,) in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def flush_redis() -> None:
    sh("redis-cli", "-n", str(REDIS_DB), "FLUSHDB", check=False)


def setup(env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SETUP],
        cwd=ROOT,
        env={
            **env,
            "DATABASE_URL": db_url(env["HITL_BENCH_DB"]),
            "AGENTS": str(AGENTS),
            "REVIEWERS": str(REVIEWERS),
            "HOOK_URL": f"http://{SINK}:{HOOK_PORT}/hook",
        },
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"set-up failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def held_by(current: dict[str, str], host: str) -> bool:
    return (
        current.get("sequencer") == f"hitl-{host}-portald"
        and current.get("deadline timer") == f"app-{host}"
    )


class Leaders:
    """Polls, every 50 ms, which process holds the sequencer's advisory lock (by its
    `application_name`) and the deadline timer's lease (its holder names the host); keeps
    each change with its time."""

    def __init__(self, db: str):
        self.db = db
        self.changes: list[tuple[float, str, str]] = []  # (time, leader, holder)
        self.current: dict[str, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def read(self, conn) -> dict[str, str]:
        lock = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s "
            "AND a.datname = current_database() AND a.application_name LIKE '%%portald'",
            [SEQUENCER_KEY],
        ).fetchone()
        lease = conn.execute(
            "SELECT holder FROM core_lease WHERE name = %s AND expires_at > now()",
            [DEADLINE_LEASE],
        ).fetchone()
        return {
            "sequencer": lock[0] if lock else "-",
            "deadline timer": lease[0].rsplit(":", 2)[0] if lease else "-",
        }

    def run(self) -> None:
        import psycopg

        with psycopg.connect(db_url(self.db), autocommit=True) as conn:
            while not self.stop.is_set():
                for leader, holder in self.read(conn).items():
                    if self.current.get(leader) != holder:
                        self.current[leader] = holder
                        self.changes.append((time.time(), leader, holder))
                self.stop.wait(0.05)

    def wait_for(self, host: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if held_by(self.current, host):
                return
            time.sleep(0.1)
        raise RuntimeError(f"host {host} did not take both leaders: {self.current}")


def pg_backends(db: str):
    import psycopg

    conn = psycopg.connect(db_url(db), autocommit=True)
    lock = threading.Lock()

    def pids() -> list[int]:
        with lock:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name LIKE 'hitl-%%'"
            ).fetchall()
        return [pid for (pid,) in rows]

    return conn, pids


# --- load --------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Fleet:
    """The hosts as a client with a load balancer's retry sees them: a request goes to the
    host its number picks; a connection error (refused, reset, cut mid-response) marks that
    host down for 5 s and sends the same request — same Idempotency-Key — to the next one."""

    def __init__(self, hosts: list[Host]):
        self.hosts = hosts
        self.down_until: dict[str, float] = {}
        self.retries = 0
        self.replayed = 0  # answers replayed from the idempotency record (a retry after a 201)
        self.by_host: dict[str, int] = {h.name: 0 for h in hosts}

    def pick(self, n: int) -> list[Host]:
        order = self.hosts[n % len(self.hosts) :] + self.hosts[: n % len(self.hosts)]
        now = time.monotonic()
        up = [h for h in order if self.down_until.get(h.name, 0) <= now]
        return up or order

    async def request(self, conns: dict, n: int, method, path, headers, body):
        for attempt in range(50):
            host = self.pick(n + attempt)[0]
            try:
                conn = conns.get(host.name)
                if conn is None:
                    conn = conns[host.name] = await Connection(host.addr, host.port).open()
                status, data = await asyncio.wait_for(conn.request(method, path, headers, body), 30)
                self.by_host[host.name] += 1
                if conn.headers.get("idempotent-replayed") == "true":
                    self.replayed += 1
                return status, data
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                conn = conns.pop(host.name, None)
                if conn is not None:
                    conn.close()
                self.down_until[host.name] = time.monotonic() + 5
                self.retries += 1
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{method} {path}: no host answered")


@dataclass
class Load:
    acked: dict[int, str] = field(default_factory=dict)  # create number -> checkpoint id
    replayed: int = 0
    decided: dict[str, int] = field(default_factory=dict)  # checkpoint id -> status
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0


async def run_load(fleet: Fleet, data: dict, rate: float, duration: float, decide: bool,
                   at_half=None, connections: int = 48, tag: str = "scale") -> Load:  # fmt: skip
    load = Load()
    queue: asyncio.Queue = asyncio.Queue()
    total = int(rate * duration)
    start = time.perf_counter() + 0.2
    pairs, tokens = data["pairs"], data["reviewers"]
    loop = asyncio.get_running_loop()
    pending_decisions = 0

    async def create(conns, k: int, due: float) -> None:
        key, run_id = pairs[k % len(pairs)]
        body = {
            "run": run_id,
            "title": f"{tag} {k:06d}",
            "risk": "high",
            "action": {"tool": "delete_files", "args": {"paths": [f"/tmp/{k}.log"]}},
        }
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"{tag}-create-{k}"}
        status, reply = await fleet.request(conns, k, "POST", "/api/v1/checkpoints/", headers, body)
        if status != 201:
            load.errors[f"create {status}"] = load.errors.get(f"create {status}", 0) + 1
            return
        load.latencies.append(time.perf_counter() - due)
        cp = ID.search(reply).group(1).decode()
        if k in load.acked:
            load.replayed += 1
        load.acked[k] = cp
        if decide:
            nonlocal pending_decisions
            pending_decisions += 1
            loop.call_later(1.0, queue.put_nowait, ("decide", k, cp))

    async def decision(conns, k: int, cp: str) -> None:
        nonlocal pending_decisions
        headers = {
            "Authorization": f"Bearer {tokens[k % len(tokens)]}",
            "Idempotency-Key": f"{tag}-decide-{k}",
        }
        path = f"/api/v1/checkpoints/{cp}/decision/"
        status, _ = await fleet.request(conns, k, "POST", path, headers, {"outcome": "approve"})
        load.decided[cp] = status
        if status != 200:
            load.errors[f"decide {status}"] = load.errors.get(f"decide {status}", 0) + 1
        pending_decisions -= 1

    async def worker() -> None:
        conns: dict = {}
        try:
            while True:
                job = await queue.get()
                if job[0] is None:
                    return
                if job[0] == "create":
                    await create(conns, job[1], job[2])
                else:
                    await decision(conns, job[1], job[2])
        finally:
            for conn in conns.values():
                conn.close()

    workers = [asyncio.ensure_future(worker()) for _ in range(connections)]
    fired = False
    for k in range(total):
        due = start + k / rate
        if at_half is not None and not fired and k >= total // 2:
            fired = True
            await loop.run_in_executor(None, at_half)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(("create", k, due))
    while queue.qsize() or (decide and pending_decisions):
        await asyncio.sleep(0.1)
    for _ in workers:
        queue.put_nowait((None,))
    await asyncio.gather(*workers)
    load.elapsed = time.perf_counter() - start
    return load


# --- checks ------------------------------------------------------------------------------------


def deliveries(sink: Sink, load: Load, emails: list[str]) -> dict:
    with sink.lock:
        mails, hooks = list(sink.mails), list(sink.hooks)
    want = {cp.encode() for cp in load.acked.values()}
    mail_count: dict[tuple[str, bytes], int] = {}
    for rcpt, ids in mails:
        for cp in ids & want:
            mail_count[(rcpt, cp)] = mail_count.get((rcpt, cp), 0) + 1
    expected_mails = len(want) * len(emails)
    hook_ids: dict[str, set[str]] = {}
    hook_count: dict[str, int] = {}
    for delivery, cp in hooks:
        hook_ids.setdefault(cp, set()).add(delivery)
        hook_count[cp] = hook_count.get(cp, 0) + 1
    decided = [cp for cp, status in load.decided.items() if status == 200]
    return {
        "mails_missing": expected_mails - len(mail_count),
        "mails_doubled": sum(n - 1 for n in mail_count.values()),
        "hooks_missing": sum(1 for cp in decided if cp not in hook_count),
        "hooks_redelivered": sum(n - 1 for n in hook_count.values()),
        "hooks_two_rows": sum(1 for ids in hook_ids.values() if len(ids) > 1),
    }


def wait_delivered(sink: Sink, load: Load, emails: list[str], timeout: float) -> tuple[float, dict]:
    t0 = time.monotonic()
    while True:
        d = deliveries(sink, load, emails)
        if (d["mails_missing"] <= 0 and d["hooks_missing"] <= 0) or (
            time.monotonic() - t0 > timeout
        ):
            return time.monotonic() - t0, d
        time.sleep(0.1)


def rows_check(db: str, load: Load) -> dict:
    import psycopg

    with psycopg.connect(db_url(db)) as conn:
        titles = dict(
            conn.execute(
                "SELECT title, count(*) FROM approvals_checkpoint "
                "WHERE title LIKE 'scale %%' GROUP BY title"
            ).fetchall()
        )
        ids = {
            str(i): t
            for i, t in conn.execute(
                "SELECT id, title FROM approvals_checkpoint WHERE title LIKE 'scale %%'"
            ).fetchall()
        }
        decisions = dict(
            (str(cp), n)
            for cp, n in conn.execute(
                "SELECT checkpoint_id, count(*) FROM approvals_decision GROUP BY checkpoint_id"
            ).fetchall()
        )
    lost = sum(1 for k, cp in load.acked.items() if ids.get(cp) != f"scale {k:06d}")
    return {
        "acked": len(load.acked),
        "rows": len(ids),
        "lost": lost,
        "doubled": sum(n - 1 for n in titles.values()),
        "unacked_rows": len(ids) - len(load.acked),
        "decided": sum(1 for s in load.decided.values() if s == 200),
        "decisions_lost": sum(
            1 for cp, s in load.decided.items() if s == 200 and decisions.get(cp, 0) < 1
        ),
        "decisions_doubled": sum(n - 1 for n in decisions.values() if n > 1),
    }


# --- phases ------------------------------------------------------------------------------------


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Phase:
    def __init__(self, name: str, hosts: list[str], sink: Sink):
        self.name, self.db = name, f"hitl_bench_scale_{name.replace('-', '_')}"
        self.hosts = [Host(*h) if isinstance(h, tuple) else Host(h) for h in hosts]
        self.sink = sink
        self.socats: list[subprocess.Popen] = []
        self.leaders: Leaders | None = None

    def __enter__(self):
        create_db(self.db)
        flush_redis()
        self.env = base_env(self.db)
        self.data = setup(self.env)
        for host in {h.net: h for h in self.hosts}.values():
            self.socats += start_socat(host)
        self.leaders = Leaders(self.db)
        self.leaders.thread.start()
        for i, host in enumerate(self.hosts):
            start_host(host, self.env)
            if i == 0:  # the first host started leads both loops
                self.leaders.wait_for(host.name)
        self.emails = [f"reviewer-{i}@example.com" for i in range(REVIEWERS)]
        # warm-up: every host's web and cluster path once, then a clean slate
        fleet = Fleet(self.hosts)
        warm = asyncio.run(run_load(fleet, self.data, 10, 2, False, tag="warm"))
        waited, d = wait_delivered(self.sink, warm, self.emails, 30)
        if d["mails_missing"] > 0:
            raise RuntimeError(f"warm-up mails missing after {waited:.0f} s: {d}")
        self.warm = set(warm.acked.values())
        self.sink.clear()
        return self

    def __exit__(self, *exc):
        if self.leaders is not None:
            self.leaders.stop.set()
            self.leaders.thread.join()
        for host in self.hosts:
            stop_host(host)
        for proc in self.socats:
            proc.terminate()
            proc.wait()
        flush_redis()
        drop_dbs()


def measure(phase: Phase, args) -> dict:
    conn, backends = pg_backends(phase.db)
    socat_pids = [p.pid for p in phase.socats]
    rpid = redis_pid()

    def groups():
        out = {}
        for host in phase.hosts:
            for kind, proc in host.procs.items():
                out.setdefault(kind, []).extend(tree_pids([proc.pid]))
        out["postgres"] = backends()
        out["socat"] = tree_pids(socat_pids)
        out["redis"] = [rpid] if rpid else []
        return out

    idle = Sampler(groups)
    idle.start()
    time.sleep(args.idle)
    idle_cpu = {k: v / args.idle for k, v in idle.finish().items()}  # CPU-s per s, no load
    sampler = Sampler(groups)
    la0 = loadavg()
    sampler.start()
    window = time.monotonic()
    fleet = Fleet(phase.hosts)
    load = asyncio.run(run_load(fleet, phase.data, args.rate, args.duration, False))
    drain, d = wait_delivered(phase.sink, load, phase.emails, 120)
    cpu = sampler.finish()
    window = time.monotonic() - window
    conn.close()
    n = max(1, len(load.acked))
    # the same CPU less what the processes spend idle (polling, standing by, sweeps)
    marginal = {k: max(0.0, v - idle_cpu.get(k, 0) * window) for k, v in cpu.items()}
    r = {
        "hosts": len(phase.hosts),
        "offered": args.rate,
        "rps": len(load.acked) / load.elapsed,
        "p50": pct(load.latencies, 50) * 1000,
        "p99": pct(load.latencies, 99) * 1000,
        "errors": load.errors,
        "drain": drain,
        "deliveries": d,
        "cpu_ms": {k: v / n * 1000 for k, v in cpu.items()},
        "marginal_ms": {k: v / n * 1000 for k, v in marginal.items()},
        "idle_cores": idle_cpu,
        "by_host": fleet.by_host,
        "load": f"{la0} -> {loadavg()}",
        "rows": rows_check(phase.db, load),
    }
    app = sum(r["cpu_ms"].get(k, 0) for k in ("web", "cluster", "portald"))
    r["app_ms"], r["total_ms"] = app, app + r["cpu_ms"].get("postgres", 0)
    m = r["marginal_ms"]
    r["marginal_app_ms"] = sum(m.get(k, 0) for k in ("web", "cluster", "portald"))
    r["marginal_total_ms"] = r["marginal_app_ms"] + m.get("postgres", 0)
    idle_hosts = sum(idle_cpu.get(k, 0) for k in ("web", "cluster", "portald"))
    c = r["cpu_ms"]
    print(
        f"  {len(phase.hosts)} host(s): {r['rps']:.1f} creates/s of {args.rate:.0f} offered, "
        f"p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms, all mails in {drain:.1f} s after; "
        f"per create: web {c.get('web', 0):.1f} + cluster {c.get('cluster', 0):.1f} + "
        f"portald {c.get('portald', 0):.1f} = {app:.1f} ms on the hosts, PostgreSQL "
        f"{c.get('postgres', 0):.1f} ms (total {r['total_ms']:.1f}); socat "
        f"{c.get('socat', 0):.1f}, redis {c.get('redis', 0):.1f} ms; less the idle CPU "
        f"({idle_hosts * 1000:.0f} ms/s on the hosts, {idle_cpu.get('postgres', 0) * 1000:.0f} "
        f"ms/s PostgreSQL): web {m.get('web', 0):.1f} + cluster {m.get('cluster', 0):.1f} + "
        f"portald {m.get('portald', 0):.1f} = {r['marginal_app_ms']:.1f} ms, PostgreSQL "
        f"{m.get('postgres', 0):.1f} ms; by host {fleet.by_host}; "
        f"errors {load.errors or 0}; {d}; load {r['load']}",
        flush=True,
    )
    return r


def kill_test(phase: Phase, args) -> dict:
    """Hosts started B first (B leads); at half time B is killed."""
    b = next(h for h in phase.hosts if h.name == "b")
    before = dict(phase.leaders.current)
    killed_at: list[float] = []

    def kill() -> None:
        killed_at.append(time.time())
        kill_host(b)
        print(f"  SIGKILL host b at t+{args.duration / 2:.0f} s", flush=True)

    fleet = Fleet(phase.hosts)
    la0 = loadavg()
    load = asyncio.run(run_load(fleet, phase.data, args.rate, args.duration, True, kill))
    print(
        f"  load done: {len(load.acked)} creates acked, {len(load.decided)} decided, "
        f"{fleet.retries} retried requests ({fleet.replayed} answered by a replay of the "
        f"first attempt's response), errors {load.errors or 0}; waiting for deliveries",
        flush=True,
    )
    drain, d = wait_delivered(phase.sink, load, phase.emails, args.settle)
    rows = rows_check(phase.db, load)
    after = dict(phase.leaders.current)
    moves = {}
    for leader in ("sequencer", "deadline timer"):
        taken = [
            t for t, name, holder in phase.leaders.changes
            if name == leader and t > killed_at[0] and holder in ("hitl-a-portald", "app-a")
        ]  # fmt: skip
        moves[leader] = (taken[0] - killed_at[0]) if taken else float("nan")
    r = {
        "rows": rows,
        "deliveries": d,
        "delivered_in": drain,
        "leaders_before": before,
        "leaders_after": after,
        "takeover_s": moves,
        "retries": fleet.retries,
        "replayed": fleet.replayed,
        "errors": load.errors,
        "by_host": fleet.by_host,
        "load": f"{la0} -> {loadavg()}",
    }
    print(
        f"  rows: {rows}\n  deliveries {d}, all in {drain:.1f} s after the load\n"
        f"  leaders before {before}\n  leaders after  {after}\n"
        f"  taken over after the kill: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in moves.items())
        + f"\n  load average {r['load']}",
        flush=True,
    )
    return r


def cleanup() -> None:
    for line in sh("pgrep", "-af", "socat TCP-LISTEN:185", check=False).stdout.splitlines():
        pid, _, cmd = line.partition(" ")
        if "bind=10.200." in cmd:
            os.kill(int(pid), signal.SIGTERM)
    net_down()
    flush_redis()
    drop_dbs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default="1host,2hosts,kill")
    parser.add_argument("--rate", type=float, default=6, help="offered creates/s")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--idle", type=float, default=10, help="s of idle CPU measured first")
    parser.add_argument("--settle", type=float, default=240, help="max wait for deliveries")
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--cleanup", action="store_true", help="only remove leftovers")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it makes network namespaces")
    cleanup()
    if args.cleanup:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    results: dict = {}
    sink = None
    try:
        for name in HOSTS:
            net_up(name)
        sink = Sink()
        print(
            f"scale-out: {os.cpu_count()} CPUs, load average {loadavg()}; {AGENTS} agents, "
            f"{REVIEWERS} reviewers notified by email per create; Redis broker",
            flush=True,
        )
        for name in args.phases.split(","):
            print(f"\n{name}", flush=True)
            hosts = {
                "1host": ["a"],
                "2hosts": ["a", "b"],
                # two hosts' processes in host A's namespace: what sharing 2 cores costs
                "1host-x2": ["a", ("a2", "a", WEB_PORT + 1)],
                "kill": ["b", "a"],
            }[name]
            key = name if name not in results else f"{name}-again"  # a bracketing re-run
            with Phase(name, hosts, sink) as phase:
                results[key] = kill_test(phase, args) if name == "kill" else measure(phase, args)
        for first, second in [
            (a, b) for a in ("1host", "1host-again", "1host-x2") for b in ("2hosts", "1host-x2")
        ]:
            if first == second or first not in results or second not in results:
                continue
            one, two = results[first], results[second]
            pg1, pg2 = (max(1e-9, r["cpu_ms"].get("postgres", 0)) for r in (one, two))
            print(
                f"\n{second} / {first}: creates/s x{two['rps'] / one['rps']:.2f}, CPU per create "
                f"on the hosts x{two['app_ms'] / one['app_ms']:.2f}, PostgreSQL "
                f"x{pg2 / pg1:.2f}, "
                f"hosts + PostgreSQL x{two['total_ms'] / one['total_ms']:.2f}; less idle CPU: "
                f"hosts x{two['marginal_app_ms'] / one['marginal_app_ms']:.2f}, hosts + "
                f"PostgreSQL x{two['marginal_total_ms'] / one['marginal_total_ms']:.2f}",
                flush=True,
            )
    finally:
        if sink is not None:
            sink.stop()
        cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
