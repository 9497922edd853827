"""schemathesis through the public port (the outside test's way: its CLI, over real HTTP):
for an agent's token and a reviewer's, every operation of the API's own OpenAPI schema, with
generated and mutated input, gets no 5xx and no broken connection from `runportal` or from
the production topology. (tests/api/test_schema.py checks conformance in-process.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents.models import Agent
from agents.transitions import run_start
from audit.events import Actor

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("who", ["agent", "reviewer"])
def test_schemathesis_finds_no_server_error_through_the_port(
    front, agent_key, reviewer_token, who, tmp_path, settings
):
    agent = Agent.objects.get(slug="bot")
    run_start(agent=agent, task="seed", actor=Actor.for_agent(agent))
    token = agent_key if who == "agent" else reviewer_token
    report = tmp_path / "junit.xml"
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run",
        f"{front.url}/api/schema/?format=json", "--url", front.url,
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error",
        "--max-examples", "15", "--seed", "18", "--generation-deterministic",
        "--workers", "2", "--request-timeout", "75", "--max-failures", "20",
        "--report", "junit", "--report-junit-path", str(report),
        "--tls-verify", str(front.verify) if front.verify is not True else "true",
        "--suppress-health-check", "all", "--warnings", "off",
    ]  # fmt: skip
    # (cwd: schemathesis keeps a cache of the crashes it found in ./.schemathesis)
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "server error" not in out.lower()
