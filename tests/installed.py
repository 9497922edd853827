"""The distributions as users install them: wheels built from this checkout (`pip wheel`, no
dependencies), and a fresh virtualenv where the OpenAI Agents SDK was installed first and then
the client's wheel with its `[openai-agents]` extra (pip takes what it can from its cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.code import CLIENT, ROOT

OPENAI_AGENTS = "openai-agents==0.24.0"  # the version the integration tests check


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH: only what is installed is importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def _run(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@dataclass(frozen=True)
class Wheels:
    client: Path
    portal: Path


def build_wheels(out: Path) -> Wheels:
    for tree in (CLIENT, ROOT):
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out),
              str(tree)], cwd=out)  # fmt: skip
    (client,) = out.glob("hitl_client-*.whl")
    (portal,) = out.glob("hitl_portal-*.whl")
    return Wheels(client, portal)


@dataclass(frozen=True)
class Venv:
    dir: Path

    def bin(self, name: str) -> str:
        return str(self.dir / "bin" / name)

    def run(self, *argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
        """A command of this venv (`python`, `hitl`, `pip`), with nothing else importable."""
        return subprocess.run(
            [self.bin(argv[0]), *argv[1:]], cwd=cwd, env=clean_env(**env),
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def client_beside_openai_agents(dir: Path, wheels: Wheels) -> Venv:
    """`python3.11 -m venv`, `pip install openai-agents==0.24.0`, then
    `pip install 'hitl-client[openai-agents]'` from the wheel."""
    python = shutil.which("python3.11") or sys.executable
    _run([python, "-m", "venv", str(dir)], cwd=dir.parent)
    venv = Venv(dir)
    _run([venv.bin("python"), "-m", "pip", "install", "--quiet", OPENAI_AGENTS], cwd=dir)
    client = f"hitl-client[openai-agents] @ {wheels.client.as_uri()}"
    _run([venv.bin("python"), "-m", "pip", "install", "--quiet", client], cwd=dir)
    return venv
