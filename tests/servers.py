"""Starting and stopping real portal web processes on 127.0.0.1, shared by the live-server
tests (`tests/api/live.py`), the benchmarks (`bench/api.py`) and, for its command lines,
`runportal`. No Django here: the caller sets the processes' environment.

Two topologies, each as users run it:
- `start_portal`: what `make run` serves, one ASGI server (granian, `hitlportal.asgi`) for
  every path, with no proxy of ours in front;
- `start_production` (tests/production.py): nginx with the configuration in docs/nginx/,
  routing by path to the WSGI server (granian, `hitlportal.wsgi`: pages and the API) and the
  ASGI server (long-poll and /mcp)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hitlportal.servers import granian_command, gunicorn_command, portal_command, uvicorn_command

ROOT = Path(__file__).resolve().parents[1]


def start_uvicorn(port: int, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = uvicorn_command("127.0.0.1", port, "--log-level", "warning", *extra)
    return subprocess.Popen(cmd, cwd=env.get("HITL_CODE_DIR", ROOT), env=env)


def start_wsgi(
    port: int, env: dict[str, str], workers: int = 1, server: str = "granian"
) -> subprocess.Popen:
    make = {"granian": granian_command, "gunicorn": gunicorn_command}[server]
    return subprocess.Popen(
        make("127.0.0.1", port, workers), cwd=env.get("HITL_CODE_DIR", ROOT), env=env
    )


@dataclass
class Portal:
    """`make run`'s web server on `port`."""

    port: int
    proc: subprocess.Popen

    def stop(self) -> None:
        stop(self.proc)


def start_portal(port: int, env: dict[str, str], workers: int = 1) -> Portal:
    cmd = portal_command("127.0.0.1", port, workers)
    proc = subprocess.Popen(cmd, cwd=env.get("HITL_CODE_DIR", ROOT), env=env)
    wait_healthy(proc, port)
    return Portal(port, proc)


@contextmanager
def runportal(port: int, env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[str]:
    """`manage.py runportal --no-demo` on `port` (its web server, portald and task cluster),
    output to `log`; yields its URL once healthy, and stops every process it started as
    Ctrl-C does (SIGINT), killing the process group if that takes over 30 s."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runportal", "--port", str(port), "--no-demo"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_healthy(proc, port, timeout=120)
            yield f"http://127.0.0.1:{port}"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


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
