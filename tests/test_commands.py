"""Management commands and settings, as a newcomer and an operator use them."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.models import Agent, AgentKey
from agents.services import AGENT_KEYS
from approvals.models import Checkpoint, Policy, UserToken
from approvals.services import USER_TOKENS
from audit.events import Actor, verify_ledger
from audit.models import AuditEvent
from hitlportal.schedules import ensure_schedules

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def table_counts() -> dict[str, int]:
    from django.contrib.auth.models import Group

    return {
        "users": get_user_model().objects.count(),
        "groups": Group.objects.count(),
        "agents": Agent.objects.count(),
        "keys": AgentKey.objects.count(),
        "policies": Policy.objects.count(),
        "checkpoints": Checkpoint.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_a_working_key():
    first = run("seed_demo")
    counts = table_counts()
    second = run("seed_demo")
    assert table_counts() == counts  # running twice changes nothing
    # The key is random, printed once when minted; only its hash is stored.
    lines = first.splitlines()
    key = lines[lines.index("Demo agent 'demo-agent' API key (shown once, keep it):") + 1].strip()
    found = AGENT_KEYS.authenticate(key)
    assert found is not None and found.agent.slug == "demo-agent"
    assert key not in second and "its API key was printed when it was created" in second
    assert key.split("_", 2)[2] not in str(list(AgentKey.objects.values()))
    User = get_user_model()
    assert User.objects.get(username="admin").is_superuser
    assert list(User.objects.get(username="reviewer").groups.values_list("name", flat=True)) == [
        "ops"
    ]
    assert list(User.objects.get(username="coder").groups.values_list("name", flat=True)) == [
        "code-review"
    ]
    assert User.objects.get(username="manager").groups.filter(name="managers").exists()
    assert User.objects.get(username="reviewer").check_password("hitl-demo")
    assert Checkpoint.objects.filter(status="pending").count() == 5
    assert verify_ledger().ok
    # the roles it made, with what they were granted, are in the trail (once: the second run
    # granted nothing new)
    made = {
        e.data["values"]["name"]: e.data["values"]["permissions"]
        for e in AuditEvent.objects.filter(verb="group.created")
    }
    assert set(made) == {"ops", "code-review", "dba", "managers"}
    assert any("Can decide checkpoints" in p for p in made["ops"])
    assert not any("Can decide checkpoints" in p for p in made["managers"])
    assert not AuditEvent.objects.filter(verb="group.updated").exists()


@pytest.mark.django_db
def test_createsuperuser_is_audited(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-enough-password-1")
    call_command(
        "createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com",
        stdout=io.StringIO(),
    )  # fmt: skip
    event = AuditEvent.objects.get(verb="user.created")
    assert event.actor_label == "createsuperuser"
    assert event.target_id == str(get_user_model().objects.get(username="root").pk)
    assert event.data["values"]["is_superuser"] is True


@pytest.mark.django_db
def test_createagent_prints_the_key_last_and_stores_only_a_hash(private_urls):
    out = run(
        "createagent",
        "deploy-bot",
        "--name",
        "Deploy bot",
        "--callback-url",
        "http://127.0.0.1:9/hook",
    )
    key = out.strip().splitlines()[-1]
    assert key.startswith("hitl_")
    agent = Agent.objects.get(slug="deploy-bot")
    assert (agent.name, agent.kind, agent.callback_url) == (
        "Deploy bot",
        "external",
        "http://127.0.0.1:9/hook",
    )
    stored = AgentKey.objects.get(agent=agent)
    assert key.split("_", 2)[2] not in (stored.secret_hash, stored.prefix)
    assert AGENT_KEYS.authenticate(key).pk == stored.pk
    assert AGENT_KEYS.authenticate(key[:-1] + ("x" if key[-1] != "x" else "y")) is None
    AGENT_KEYS.revoke(stored, Actor.system())
    assert AGENT_KEYS.authenticate(key) is None
    verbs = list(AuditEvent.objects.values_list("verb", flat=True))
    assert verbs == ["agent.created", "agent.key_created", "agent.key_revoked"]


@pytest.mark.django_db
def test_createagent_refuses_bad_input():
    with pytest.raises(CommandError, match="slug"):
        run("createagent", "Not A Slug")
    with pytest.raises(CommandError, match="--hosted"):
        run("createagent", "x", "--hosted", "no.such.Class")
    assert not Agent.objects.exists()


@pytest.mark.django_db
def test_createusertoken_prints_a_working_token(reviewer):
    token = run("createusertoken", "rita").strip().splitlines()[-1]
    row = USER_TOKENS.authenticate(token)
    assert row is not None and row.user == reviewer
    assert UserToken.objects.get().secret_hash != token
    with pytest.raises(CommandError):
        run("createusertoken", "nobody")


@pytest.mark.django_db
def test_sweep_command_expires_overdue(make_checkpoint):
    import datetime as dt

    from django.utils import timezone

    cp = make_checkpoint()
    Checkpoint.objects.filter(pk=cp.pk).update(deadline=timezone.now() - dt.timedelta(seconds=1))
    out = run("sweep")
    assert '"expired": 1' in out
    assert Checkpoint.objects.get(pk=cp.pk).status == "expired"


@pytest.mark.django_db
def test_schedules_are_registered_once():
    from django_q.models import Schedule

    ensure_schedules()
    ensure_schedules()
    Schedule.objects.create(name="hitl-sweep", func="hitlportal.sweeps.run_all")  # a stray copy
    call_command("migrate", verbosity=0)
    ensure_schedules()
    rows = Schedule.objects.filter(name="hitl-sweep")
    assert rows.count() == 1
    assert rows.get().func == "hitlportal.sweeps.run_all"


def settings_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DEBUG",
            "SECRET_KEY",
            "DATABASE_URL",
            "ALLOWED_HOSTS",
            "REDIS_URL",
            "HITL_ENCRYPTION_KEY",
            "HITL_LEDGER_SIGNING_KEY",
        )
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY is not set"),
        ({"DEBUG": "maybe"}, "is not a boolean"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "at least 50"),
        ({"DEBUG": "0", "SECRET_KEY": "k" * 60}, "ALLOWED_HOSTS must be set"),
        (
            {"DEBUG": "0", "SECRET_KEY": "k" * 60, "ALLOWED_HOSTS": "hitl.example.com"},
            "HITL_ENCRYPTION_KEY is not set",
        ),
        (
            {
                "DEBUG": "0",
                "SECRET_KEY": "k" * 60,
                "ALLOWED_HOSTS": "hitl.example.com",
                "HITL_ENCRYPTION_KEY": "not-a-fernet-key",
            },
            "not a Fernet key",
        ),
        ({"DEBUG": "1", "HITL_DEFAULT_TIMEOUT": "soon"}, "is not an integer"),
        ({"DEBUG": "1", "REDIS_URL": "http://x"}, "must be a redis:// URL"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://x/y"}, "not supported"),
        (
            {
                "DEBUG": "0",
                "SECRET_KEY": "k" * 60,
                "ALLOWED_HOSTS": "hitl.example.com",
                "HITL_ENCRYPTION_KEY": "ZmRhc2RmYXNkZmFzZGZhc2RmYXNkZmFzZGZhc2RmYXM=",
            },
            "HITL_LEDGER_SIGNING_KEY is not set",
        ),
        ({"DEBUG": "1", "HITL_LEDGER_SIGNING_KEY": "c2hvcnQ="}, "a 32-byte"),
        ({"DEBUG": "1", "HITL_LEDGER_WITNESSES": "ftp://x/y"}, "HITL_LEDGER_WITNESSES"),
        ({"DEBUG": "1", "EMAIL_URL": "pigeon://coop"}, "is not an email URL"),
        ({"DEBUG": "1", "HITL_STEP_UP_RISK": "extreme"}, "must be low, medium, high, critical"),
    ],
)
def test_settings_fail_loudly_on_bad_config(env, message):
    result = settings_check(env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_pass_the_deploy_check():
    result = settings_check(
        {
            "DEBUG": "0",
            "SECRET_KEY": "p" * 30 + "roduction-secret-key-of-sufficient-length",
            "ALLOWED_HOSTS": "hitl.example.com",
            "HITL_ENCRYPTION_KEY": "ZmRhc2RmYXNkZmFzZGZhc2RmYXNkZmFzZGZhc2RmYXM=",
            "HITL_LEDGER_SIGNING_KEY": base64.b64encode(bytes(range(32))).decode(),
        }
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_make_run_writes_a_dotenv_that_every_documented_command_reads(tmp_path):
    """After `make run`, `.venv/bin/python manage.py ...` (verify_audit, startrun, ...) works
    as the README writes it: the development settings persist in .env."""
    import shutil

    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    subprocess.run(["make", "-s", ".env"], cwd=tmp_path, check=True, timeout=30)
    dotenv = tmp_path / ".env"
    assert "DEBUG=1" in dotenv.read_text().splitlines()
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DATABASE_URL")}

    def manage_check(env_file: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env={**base, "HITL_ENV_FILE": env_file, "HITL_VAR_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    without = manage_check("")
    assert without.returncode != 0 and "SECRET_KEY is not set" in without.stderr
    with_dotenv = manage_check(str(dotenv))
    assert with_dotenv.returncode == 0 and "no issues" in with_dotenv.stdout, with_dotenv.stderr
