"""Starting and stopping a real portal web process (uvicorn serving hitlportal.asgi on
127.0.0.1), shared by the live-server tests (`tests/api/live.py`) and the benchmarks
(`bench/api.py`). No Django here: the caller sets the process's environment."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def start_uvicorn(port: int, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "hitlportal.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def wait_healthy(proc: subprocess.Popen, port: int, timeout: float = 30) -> None:
    """Until /api/v1/health/ answers 200; RuntimeError if the process exits or time runs out
    (the process is then stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"portal exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"portal did not start within {timeout:.0f} s")


def stop(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
