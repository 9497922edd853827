from __future__ import annotations

import os
import shutil
import uuid

import pytest
from django.conf import settings

from agents.models import Run
from agents.services import Ask, ask
from agents.transitions import run_start
from audit.events import Actor
from tests.factories import AgentFactory, UserFactory


def _flush_retrying_deadlocks() -> None:
    """A transactional test's flush (one TRUNCATE of every table) can meet a live portal's
    background processes (its task cluster, portald) on PostgreSQL, and the database then
    picks one side of the deadlock to fail. Our side retries: theirs is done a moment later.
    Any other failure is raised at once."""
    import time

    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    flush = TransactionTestCase._fixture_teardown

    def teardown(self):
        for attempt in range(5):
            try:
                return flush(self)
            except CommandError as exc:
                if "deadlock" not in str(exc.__cause__).lower() or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    TransactionTestCase._fixture_teardown = teardown


_flush_retrying_deadlocks()


@pytest.fixture(autouse=True, scope="session")
def strict_audit_payloads():
    """Every audit event the suite writes has only the keys its verb's payload type declares
    (audit/payloads.py)."""
    from audit import payloads

    payloads.STRICT = True
    yield
    payloads.STRICT = False


def pytest_collection_modifyitems(config, items):
    """Skip what this machine cannot run, saying why."""
    is_pg = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    has_chromium = shutil.which("chromium") or os.path.exists("/usr/bin/chromium")
    for item in items:
        if "postgres" in item.keywords and not is_pg:
            item.add_marker(
                pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... to run")
            )
        if "browser" in item.keywords and not has_chromium:
            item.add_marker(
                pytest.mark.skip(
                    reason="needs /usr/bin/chromium (apt-get install chromium) for browser tests"
                )
            )


@pytest.fixture
def private_urls(settings):
    """Let the portal send to receivers on 127.0.0.1 (tests' own servers): production sends
    only to public addresses (`core.net`)."""
    settings.HITL_ALLOW_PRIVATE_URLS = True


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
def inline(django_capture_on_commit_callbacks):
    """Call something and run the tasks it enqueues on commit inline (HITL_Q_SYNC in tests)."""

    def call(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call


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


@pytest.fixture
def cluster_env() -> dict[str, str]:
    """Extra environment of the `clusters` processes (the hosted tests add their sandbox)."""
    return {}


@pytest.fixture
def clusters(cluster_env, tmp_path, settings):
    """Start real qcluster processes on a queue of their own; this process enqueues to the
    same queue (`clusters("portald")`: a portald against the same database). Tests using it
    need `django_db(transaction=True)`."""
    from django_q.conf import Conf
    from django_q.models import Task
    from django_q.tasks import async_task

    from tests.api.live import test_database_url
    from tests.cluster import Cluster, wait_for

    settings.HITL_RECONCILE_GRACE = 1  # this process runs the sweeps by hand
    name = f"hitl-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "HITL_Q_NAME": name,
        "HITL_Q_SYNC": "0",
        "HITL_Q_WORKERS": "2",
        "HITL_RECONCILE_GRACE": "1",
        "DEBUG": "1",
        "SECRET_KEY": settings.SECRET_KEY,
        **cluster_env,
    }
    saved = Conf.CLUSTER_NAME, Conf.PREFIX, Conf.SYNC
    Conf.CLUSTER_NAME = Conf.PREFIX = name
    Conf.SYNC = False
    started: list[Cluster] = []

    def start(command: str = "qcluster") -> Cluster:
        """Start a cluster (ready once it ran a task), or `portald` with the same setup."""
        # The clusters may send where this process may (`private_urls`: receivers here).
        env["HITL_ALLOW_PRIVATE_URLS"] = "1" if settings.HITL_ALLOW_PRIVATE_URLS else "0"
        log = tmp_path / f"{command}-{len(started)}.log"
        cluster = Cluster(env, log, command).start()
        started.append(cluster)
        if command != "qcluster":
            return cluster
        ping = async_task("math.floor", 1.5)  # ready once it has run a task
        wait_for(
            lambda: Task.objects.filter(id=ping, success=True).exists(), 30, "the cluster to start"
        )
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
    Conf.CLUSTER_NAME, Conf.PREFIX, Conf.SYNC = saved
