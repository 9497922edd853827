"""The TypeScript client as users install it: `npm ci && npm run build` in clients/typescript
(node_modules is kept between runs), `npm pack`, the tarball installed into a fresh node
project beside the real `ai` and `@openai/agents`; its scripts then run against a live
`manage.py runportal` (web server, portald and task cluster) on the test database."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from agents.services import AGENT_KEYS
from audit.events import Actor
from tests import servers
from tests.api.live import test_database_url
from tests.factories import AgentFactory, UserFactory
from tests.receivers import HttpReceiver

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
SCRIPTS = Path(__file__).with_name("scripts")
PORTS = range(18600, 18700)  # this suite's own ports, on 127.0.0.1

pytestmark = pytest.mark.slow


def node_tools() -> tuple[str, str] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


def free_port(taken: tuple[int, ...] = ()) -> int:
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18600-18699")


def _npm(*args: str, cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(
        ["npm", *args, "--no-audit", "--no-fund"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"npm {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


@dataclass
class Installed:
    """The packed package installed into a fresh project (`dir`)."""

    dir: Path
    tarball: Path

    def node(self, script: str, *args: str, env: dict[str, str], timeout: float = 120) -> dict:
        proc = subprocess.run(
            ["node", str(self.dir / script), *args],
            cwd=self.dir,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def popen(self, script: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            ["node", str(self.dir / script), *args],
            cwd=self.dir,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(scope="session")
def dev_tools() -> Path:
    """clients/typescript with its dev dependencies (`npm ci`, kept while the lock is older)."""
    if node_tools() is None:
        pytest.skip("needs node and npm on PATH (the TypeScript client's build and tests)")
    lock = PACKAGE / "package-lock.json"
    stamp = PACKAGE / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        _npm("ci", cwd=PACKAGE)
    return PACKAGE


@pytest.fixture(scope="session")
def installed(dev_tools, tmp_path_factory) -> Installed:
    _npm("run", "build", cwd=PACKAGE)
    out = tmp_path_factory.mktemp("npm-pack")
    packed = json.loads(_npm("pack", "--json", "--pack-destination", str(out), cwd=PACKAGE))
    tarball = out / packed[0]["filename"]
    project = tmp_path_factory.mktemp("ts-agent")
    (project / "package.json").write_text(json.dumps({"name": "ts-agent", "private": True}))
    dev = json.loads((PACKAGE / "package.json").read_text())["devDependencies"]
    sdks = [f"{name}@{dev[name]}" for name in ("ai", "@openai/agents", "zod")]
    _npm("install", "--prefer-offline", str(tarball), *sdks, cwd=project)
    for script in SCRIPTS.iterdir():
        shutil.copy(script, project / script.name)
    return Installed(project, tarball)


@pytest.fixture(scope="session")
def receiver():
    """Where the agent's webhooks go (a port of this suite's)."""
    r = HttpReceiver(port=free_port())
    yield r
    r.stop()


# Package scope: runportal's task cluster and portald work on the test database, so they
# must be gone before the tests of other packages (which read the task queue) run.
@pytest.fixture(scope="package")
def portal(django_db_setup, django_db_blocker, tmp_path_factory, receiver):
    tmp = tmp_path_factory.mktemp("runportal")
    port = free_port(taken=(receiver.server.server_port,))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    (tmp / "prometheus").mkdir()
    env.update(
        {
            "DEBUG": "1",
            "DATABASE_URL": test_database_url(),
            "HITL_FAST_HASHER": "1",
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
            "HITL_ENV_FILE": "",
            "HITL_ENCRYPTION_KEY": ",".join(settings.HITL_ENCRYPTION_KEYS),
            "HITL_Q_SYNC": "0",
            "HITL_Q_NAME": f"client-ts-{port}",
            "HITL_SITE_URL": f"http://127.0.0.1:{port}",
            "HITL_ALLOW_PRIVATE_URLS": "1",  # the webhook receiver is on 127.0.0.1
        }
    )
    with servers.runportal(port, env, tmp / "runportal.log") as url:
        yield url


@pytest.fixture
def agent(transactional_db, receiver):
    cache.clear()
    return AgentFactory(slug="ts-bot", name="TS Bot", callback_url=receiver.url)


@pytest.fixture
def agent_env(portal, agent) -> dict[str, str]:
    return {"HITL_URL": portal, "HITL_API_KEY": AGENT_KEYS.create(agent, Actor.system("test"))}


@pytest.fixture
def rita(transactional_db):
    return UserFactory(username="rita", roles=["ops"])
