"""The SQL statements of one create-checkpoint and one decision through the API (the Django
test client, in process, SQLite under a temporary directory; PostgreSQL with DATABASE_URL):
what the lean paths cost in round trips. Also the create's notification fan-out, which runs
after its commit as a task on the cluster (here called directly).

    .venv/bin/python bench/statements.py [-v]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("HITL_Q_SYNC", "0")  # production behaviour: the sequencer runs elsewhere
if not os.environ.get("DATABASE_URL"):
    os.environ.setdefault("HITL_VAR_DIR", tempfile.mkdtemp(prefix="hitl-statements-"))

import django

django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from agents.models import Agent  # noqa: E402
from agents.services import AGENT_KEYS  # noqa: E402
from agents.transitions import run_start  # noqa: E402
from approvals.rules import DECIDE_PERMISSION  # noqa: E402
from approvals.services import user_token_create  # noqa: E402
from audit.events import Actor  # noqa: E402
from notifications.models import Notice  # noqa: E402
from notifications.tasks import fan_out  # noqa: E402


def main() -> None:
    call_command("migrate", verbosity=0)
    actor = Actor.system("bench")
    agent = Agent.objects.create(slug=f"st-{uuid.uuid4().hex[:8]}", name="statements")
    run = run_start(agent=agent, task="t", actor=actor)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {AGENT_KEYS.create(agent, actor)}")
    # A reviewer as tests/factories.py makes one: a staff user with an email address (so a
    # request notifies them) in a review role (a group with the decide permission), deciding
    # with a token of the decide scope.
    ops = Group.objects.get_or_create(name="ops")[0]
    ops.permissions.add(Permission.objects.get(codename=DECIDE_PERMISSION))
    name = f"st-{uuid.uuid4().hex[:8]}"
    user = User.objects.create_user(name, email=f"{name}@example.com", is_staff=True)
    user.groups.add(ops)
    person = APIClient()
    person.credentials(HTTP_AUTHORIZATION=f"Bearer {user_token_create(user, scope='decide')}")
    body = {
        "run": str(run.pk),
        "title": "Delete batch",
        "risk": "high",
        "action": {"tool": "delete_files", "args": {"paths": ["/tmp/1.log"]}},
        "context": {"reasoning": ["disk is full"]},
    }
    for _ in range(3):  # warm: the run is waiting, the policy cache is filled
        with CaptureQueriesContext(connection) as create:
            response = api.post(
                "/api/v1/checkpoints/",
                json.dumps(body),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
            )
        assert response.status_code == 201, response.content
    notices = list(
        Notice.objects.filter(checkpoint_id=response.json()["id"]).values_list("pk", flat=True)
    )
    with CaptureQueriesContext(connection) as fanning:  # what the cluster does after the commit
        assert fan_out(notices) == "fanned out 1 of 1 notice(s)"
    with CaptureQueriesContext(connection) as decide:
        response = person.post(
            f"/api/v1/checkpoints/{response.json()['id']}/decision/",
            json.dumps({"outcome": "approve"}),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
    assert response.status_code == 200, response.content
    for name, ctx in (
        ("create-checkpoint", create),
        ("its fan-out and send (task, 1 reviewer)", fanning),
        ("decision", decide),
    ):
        print(f"{name}: {len(ctx.captured_queries)} statements ({connection.vendor})")
        if "-v" in sys.argv:
            for q in ctx.captured_queries:
                print("   ", q["sql"][:120])


if __name__ == "__main__":
    main()
