from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agents.models import Agent
from agents.runtime import start_hosted_run
from audit.events import Actor
from tests.factories import AgentFactory, UserFactory

DAY = 86400


@pytest.fixture
def sandbox(tmp_path, settings) -> Path:
    root = tmp_path / "sandbox"
    root.mkdir()
    settings.HITL_SANDBOX_ROOTS = [str(root.resolve())]
    return root.resolve()


def make_logs(directory: Path, ages: dict[str, float]) -> dict[str, Path]:
    """Create files with modification times `age` days in the past."""
    now = time.time()
    made = {}
    for name, age in ages.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\n" * 10)
        os.utime(path, (now - age * DAY, now - age * DAY))
        made[name] = path
    return made


@pytest.fixture
def starter(db):
    """The human who starts runs (four-eyes: never their approver)."""
    return UserFactory(username="stan", roles=["ops"])


@pytest.fixture
def hosted(db):
    def make(slug: str, runtime: str, **config) -> Agent:
        return AgentFactory(
            slug=slug, name=slug, kind=Agent.Kind.HOSTED, runtime=runtime, config=config
        )

    return make


@pytest.fixture
def ledger_agent(hosted, sandbox):
    def make(turns, **config):
        config.setdefault("ledger", str(sandbox / "ledger.txt"))
        return hosted("ledger", "tests.hosted.agents.LedgerAgent", turns=turns, **config)

    return make


@pytest.fixture
def start(inline, starter):
    def go(agent: Agent, task: str = "", input: dict | None = None):
        run = inline(
            start_hosted_run,
            agent=agent,
            task=task or "test task",
            input=input,
            created_by=starter,
            actor=Actor.for_user(starter),
        )
        run.refresh_from_db()
        return run

    return go


@pytest.fixture
def cluster_env(sandbox) -> dict[str, str]:
    """Hosted runs in real clusters work in this test's sandbox, with a short run lease."""
    return {"HITL_SANDBOX_ROOTS": str(sandbox), "HITL_RUN_LEASE": "2"}
