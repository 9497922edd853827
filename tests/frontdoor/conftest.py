"""The front doors users connect to, live: `manage.py runportal` (what `make run` starts:
web server, portald and task cluster) and the production topology (nginx with
docs/nginx/, granian, uvicorn; tests/production.py). Both on the test database, so a test
makes its configuration rows here and checks the rows the portal wrote."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.cache import cache

from agents.services import AGENT_KEYS
from approvals.services import user_token_create
from audit.events import Actor
from tests import production, servers
from tests.api.live import free_port, test_database_url
from tests.factories import AgentFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-for-tests"
pytestmark = pytest.mark.slow


@dataclass
class Front:
    kind: str  # "runportal" | "nginx"
    url: str
    verify: str | bool = True
    topology: production.Production | None = None

    def client(self, *, source: str | None = None, **kwargs) -> httpx.Client:
        """A fresh client with its own cookies; `source`: the address it connects from (any
        127.0.0.0/8 address is this machine's, so tests can be several clients)."""
        transport = httpx.HTTPTransport(local_address=source, verify=self.verify)
        kwargs.setdefault("timeout", 60)
        return httpx.Client(base_url=self.url, transport=transport, **kwargs)

    def login(self, client: httpx.Client, username: str, password: str = PASSWORD):
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        return client.post(
            "/accounts/login/",
            data={"login": username, "password": password, "csrfmiddlewaretoken": token[1]},
            headers={"Origin": self.url, "Referer": f"{self.url}/accounts/login/"},
        )


def _base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "HITL_FAST_HASHER": "1",
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
            "HITL_ENV_FILE": "",
            # The test process encrypts the rows it makes with its (development) key.
            "HITL_ENCRYPTION_KEY": ",".join(settings.HITL_ENCRYPTION_KEYS),
        }
    )
    (tmp / "prometheus").mkdir(exist_ok=True)
    return env


# Package scope: runportal's task cluster and portald work on the test database, so they
# must be gone before the tests of other packages (which read the task queue) run.
@pytest.fixture(scope="package")
def runportal_front(django_db_setup, django_db_blocker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runportal")
    port = free_port()
    env = _base_env(tmp)
    env.update({"DEBUG": "1", "HITL_Q_SYNC": "0", "HITL_Q_NAME": f"frontdoor-{port}"})
    # HITL_CODE_DIR: another checkout's runportal (e.g. to see these tests fail on an old one).
    code = Path(os.environ.get("HITL_CODE_DIR") or ROOT)
    if code != ROOT:
        client = code / "clients" / "python"  # the client, where it is its own distribution
        env["PYTHONPATH"] = os.pathsep.join(
            [str(client), str(code)] if client.is_dir() else [str(code)]
        )
    with servers.runportal(port, env, tmp / "runportal.log", cwd=code) as url:
        yield Front("runportal", url)


@pytest.fixture(scope="package")
def nginx_front(django_db_setup, django_db_blocker, tmp_path_factory):
    if not production.nginx_available():
        pytest.skip("needs nginx (apt-get install nginx-light) for the production topology")
    tmp = tmp_path_factory.mktemp("production")
    env = _base_env(tmp)
    env["HITL_Q_SYNC"] = "1"
    ports: list[int] = []
    while len(ports) < 4:
        port = free_port()
        if port not in ports:
            ports.append(port)
    topology = production.start_production(tmp, env, ports)
    try:
        yield Front("nginx", topology.url, verify=str(topology.ca), topology=topology)
    finally:
        topology.stop()


@pytest.fixture(params=["runportal", "nginx"])
def front(request, transactional_db) -> Front:
    cache.clear()  # login rate limits (the database cache every process shares)
    yield request.getfixturevalue(f"{request.param}_front")
    cache.clear()


@pytest.fixture
def people(transactional_db):
    """A reviewer (ops), a second reviewer, a manager; passwords PASSWORD."""
    return {
        "rita": UserFactory(username="rita", roles=["ops"]),
        "raj": UserFactory(username="raj", roles=["ops"]),
        "max": UserFactory(username="max", roles=[settings.HITL_MANAGERS_GROUP]),
    }


@pytest.fixture
def agent_key(transactional_db) -> str:
    agent = AgentFactory(slug="bot", name="Bot")
    return AGENT_KEYS.create(agent, Actor.system("test"))


@pytest.fixture
def reviewer_token(people) -> str:
    return user_token_create(people["rita"], name="test", scope="decide")
