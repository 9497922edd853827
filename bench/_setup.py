"""Shared set-up for the hosted-runtime benchmarks: a database of their own (a fresh SQLite
file under var/bench/, or --database-url), Django configured from that, a qcluster subprocess
on a queue of its own."""

from __future__ import annotations

import argparse
import base64
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def configure(name: str, args: argparse.Namespace) -> dict:
    """Set the environment before Django loads, then set Django up. Returns the env for
    subprocesses."""
    var = ROOT / "var" / "bench" / name
    if var.exists() and not args.database_url:
        for f in var.glob("*.sqlite3*"):
            f.unlink()
    var.mkdir(parents=True, exist_ok=True)
    env = {
        # Production mode: DEBUG=1 records every SQL statement and costs throughput.
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + "k" * 60,
        # Production mode needs an encryption key; a throwaway one for the bench database.
        "HITL_ENCRYPTION_KEY": os.environ.get("HITL_ENCRYPTION_KEY") or _fernet_key(),
        # and the ledger's signing key (a throwaway Ed25519 seed)
        "HITL_LEDGER_SIGNING_KEY": os.environ.get("HITL_LEDGER_SIGNING_KEY")
        or base64.b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "localhost",
        "HITL_VAR_DIR": str(var),
        "HITL_Q_NAME": f"hitl-bench-{name}-{os.getpid()}",
        "HITL_Q_SYNC": "0",
        "HITL_Q_POLL": str(args.poll),
        "HITL_Q_WORKERS": "2",
        "HITL_Q_SAVE_LIMIT": "-1" if getattr(args, "unlimited_save", False) else "500",
        "HITL_SANDBOX_ROOTS": str(var),
        # The benches' receivers (Slack, webhooks) run on 127.0.0.1.
        "HITL_ALLOW_PRIVATE_URLS": "1",
        "LOG_LEVEL": "WARNING",
    }
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    if getattr(args, "redis", None):
        env["REDIS_URL"] = args.redis
    else:
        os.environ.pop("REDIS_URL", None)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "hitlportal.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    if args.database_url:
        call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    if getattr(args, "redis", None):
        import redis

        redis.Redis.from_url(args.redis).delete(env["HITL_Q_NAME"])
    return {**os.environ}


def ensure_postgres_database() -> None:
    """Create the PostgreSQL database DATABASE_URL names, if it does not exist yet."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", default="", help="default: a fresh SQLite file under var/bench/"
    )
    parser.add_argument("--poll", type=float, default=0.1, help="ORM broker poll (s)")


class Cluster:
    """A `manage.py qcluster` (or other `command`: `portald`) process group."""

    def __init__(self, env: dict, command: str = "qcluster"):
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        from django_q.models import Task
        from django_q.tasks import async_task

        ping = async_task("math.floor", 1.5)
        deadline = time.monotonic() + 60
        while not Task.objects.filter(id=ping).exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the cluster did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def percentiles(values: list[float]) -> str:
    values = sorted(values)

    def pct(p: float) -> float:
        return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]

    return (
        f"n={len(values)} p50={pct(50):.1f} ms p90={pct(90):.1f} ms p99={pct(99):.1f} ms "
        f"max={values[-1]:.1f} ms mean={statistics.mean(values):.1f} ms"
    )
