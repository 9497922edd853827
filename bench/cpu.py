"""Server CPU per create-checkpoint and per decision, in process: N creates by an agent, then N
decisions (approve) by a reviewer, through the Django test client (the whole request path:
middleware, authentication, throttling, the view, the transaction), timed with
`time.process_time` (this process's CPU only: the database server's is not counted). DEBUG
off, so Django does not keep the queries. PostgreSQL with DATABASE_URL, else SQLite under a
temporary directory. The sequencer and the cluster run elsewhere (HITL_Q_SYNC=0): enqueues are
rows, as in production.

    .venv/bin/python bench/cpu.py [-n 300] [--profile create|decision]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")
os.environ["DEBUG"] = "0"
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("HITL_Q_SYNC", "0")
os.environ.setdefault("DB_CONN_MAX_AGE", "600")  # as production runs the WSGI servers
os.environ.setdefault("HITL_API_THROTTLE_AGENT", "")
os.environ.setdefault("HITL_API_THROTTLE_USER", "")
_var = tempfile.mkdtemp(prefix="hitl-cpu-")
os.environ.setdefault("HITL_VAR_DIR", _var)
if not os.environ.get("HITL_ENCRYPTION_KEY"):
    from cryptography.fernet import Fernet

    os.environ["HITL_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
if not os.environ.get("HITL_LEDGER_SIGNING_KEY"):
    import base64

    os.environ["HITL_LEDGER_SIGNING_KEY"] = base64.b64encode(os.urandom(32)).decode()

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from agents.models import Agent  # noqa: E402
from agents.services import AGENT_KEYS  # noqa: E402
from agents.transitions import run_start  # noqa: E402
from approvals.rules import DECIDE_PERMISSION  # noqa: E402
from approvals.services import user_token_create  # noqa: E402
from audit.events import Actor  # noqa: E402

_BATCHES: dict[str, list[float]] = {}

BODY = {
    "title": "Delete batch",
    "risk": "high",
    "action": {"tool": "delete_files", "args": {"paths": ["/tmp/1.log"]}},
    "context": {"reasoning": ["disk is full"]},
}


def _timed(label: str, calls, profile: bool) -> float:
    """CPU seconds of `calls`. `profile`: under pyinstrument (wall-clock samples; time in
    psycopg's `wait` is the database's), its tree printed; without pyinstrument, cProfile."""
    profiler = None
    if profile:
        try:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
        except ImportError:
            profiler = cProfile.Profile()
        profiler.enable() if isinstance(profiler, cProfile.Profile) else profiler.start()
    # CPU per batch of 25: on a shared machine the least loaded batches are the truest figure
    # (`min` and the median are reported beside the mean).
    batches = []
    for i in range(0, len(calls), 25):
        start = time.process_time()
        for call in calls[i : i + 25]:
            call()
        batches.append((time.process_time() - start) / len(calls[i : i + 25]))
    cpu = statistics.mean(batches)
    _BATCHES[label] = batches
    if isinstance(profiler, cProfile.Profile):
        profiler.disable()
        profiler.dump_stats(f"/tmp/hitl-cpu-{label}.prof")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"/(api|agents|approvals)/", 40)
    elif profiler is not None:
        profiler.stop()
        print(profiler.output_text(show_all=False, color=False))
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--profile", choices=["create", "decision"])
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    actor = Actor.system("bench")
    agent = Agent.objects.create(slug=f"cpu-{uuid.uuid4().hex[:8]}", name="cpu")
    run = run_start(agent=agent, task="t", actor=actor)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {AGENT_KEYS.create(agent, actor)}")
    ops = Group.objects.get_or_create(name="ops")[0]
    ops.permissions.add(Permission.objects.get(codename=DECIDE_PERMISSION))
    name = f"cpu-{uuid.uuid4().hex[:8]}"
    user = User.objects.create_user(name, email=f"{name}@example.com", is_staff=True)
    user.groups.add(ops)
    person = APIClient()
    person.credentials(HTTP_AUTHORIZATION=f"Bearer {user_token_create(user, scope='decide')}")
    body = json.dumps({"run": str(run.pk), **BODY})
    ids: list[str] = []

    def create():
        response = api.post(
            "/api/v1/checkpoints/",
            body,
            content_type="application/json",
            secure=True,
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])

    decision = json.dumps({"outcome": "approve"})

    def decide(pk):
        def call():
            response = person.post(
                f"/api/v1/checkpoints/{pk}/decision/",
                decision,
                content_type="application/json",
                secure=True,
                HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
            )
            assert response.status_code == 200, response.content

        return call

    for _ in range(20):  # warm: imports, the policy cache, connections
        create()
    for pk in ids[:10]:
        decide(pk)()
    del ids[:]
    n = args.n
    create_cpu = _timed("create", [create] * n, args.profile == "create")
    decide_cpu = _timed("decision", [decide(pk) for pk in ids], args.profile == "decision")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    c, d = sorted(_BATCHES["create"]), sorted(_BATCHES["decision"])
    print(
        f"{connection.vendor}: {n} creates {create_cpu * 1000:.2f} ms CPU each "
        f"(batches of 25: min {c[0] * 1000:.2f}, median {statistics.median(c) * 1000:.2f}); "
        f"{len(ids)} decisions {decide_cpu * 1000:.2f} ms "
        f"(min {d[0] * 1000:.2f}, median {statistics.median(d) * 1000:.2f}); "
        f"load {' '.join(load)}"
    )


if __name__ == "__main__":
    main()
