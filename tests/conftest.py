from __future__ import annotations

import os
import shutil

import pytest
from django.conf import settings
from django.db import connection

from agents.models import Run
from agents.services import Ask, ask
from agents.transitions import run_start
from approvals.audit import Actor
from tests.factories import AgentFactory, UserFactory


def pytest_collection_modifyitems(config, items):
    """Skip what this machine cannot run, saying why."""
    is_pg = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    has_chromium = shutil.which("chromium") or os.path.exists("/usr/bin/chromium")
    for item in items:
        if "postgres" in item.keywords and not is_pg:
            item.add_marker(
                pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... to run")
            )
        if "redis" in item.keywords and not os.environ.get("REDIS_URL"):
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL to run"))
        if "browser" in item.keywords and not has_chromium:
            item.add_marker(
                pytest.mark.skip(
                    reason="needs /usr/bin/chromium (apt-get install chromium) for browser tests"
                )
            )


@pytest.fixture(autouse=True)
def fresh_policy_cache():
    """Routing reads policies through a per-process cache; a test's rolled-back policies must
    not outlive it (a rollback sends no post_delete)."""
    from approvals import policies

    policies.forget_policies()
    yield
    policies.forget_policies()


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita", roles=["ops"])


@pytest.fixture
def reviewer2(db):
    return UserFactory(username="raj", roles=["ops"])


@pytest.fixture
def dba(db):
    return UserFactory(username="dora", roles=["dba"])


@pytest.fixture
def manager(db):
    return UserFactory(username="max", roles=[settings.HITL_MANAGERS_GROUP])


@pytest.fixture
def agent(db):
    return AgentFactory(slug="bot", name="Bot")


@pytest.fixture
def make_checkpoint(db, agent):
    """Start a run and ask on it, the way agents do."""

    def make(run: Run | None = None, **fields):
        run = run or run_start(agent=agent, task="task", actor=Actor.for_agent(agent))
        fields.setdefault("title", "Delete old logs")
        fields.setdefault("action", {"tool": "delete_files", "args": {"paths": ["/tmp/a.log"]}})
        return ask(run, [Ask(**fields)], actor=Actor.for_agent(run.agent))[0]

    return make


@pytest.fixture
def broker(settings):
    """Use the real ORM broker (not sync) and read back what was enqueued."""
    from django_q.conf import Conf

    old = Conf.SYNC
    Conf.SYNC = False
    yield BrokerView()
    Conf.SYNC = old


class BrokerView:
    def tasks(self) -> list[dict]:
        from django_q.models import OrmQ

        return [q.task for q in OrmQ.objects.all()]

    def calls(self, func: str) -> list[tuple]:
        return [t["args"] for t in self.tasks() if t["func"] == func]
