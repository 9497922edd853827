"""Starting and stopping real portal web processes on 127.0.0.1, shared by the live-server
tests (`tests/api/live.py`), the benchmarks (`bench/api.py`) and, for its command lines,
`runportal`. No Django here: the caller sets the processes' environment.

The portal as deployed is two servers: the WSGI server (granian, `hitlportal.wsgi`) for
everything, and the ASGI server (uvicorn, `hitlportal.asgi`) for long-poll. `start_portal`
starts both with the ASGI one in front (it forwards everything but long-poll to the WSGI
one: `HITL_WSGI_UPSTREAM`), as `make run` does."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from hitlportal.servers import granian_command, gunicorn_command, uvicorn_command

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
    """The two servers; `port` is the front (ASGI, forwarding to `wsgi_port`)."""

    port: int
    wsgi_port: int
    wsgi: subprocess.Popen
    asgi: subprocess.Popen

    def stop(self) -> None:
        stop(self.asgi)
        stop(self.wsgi)


def start_portal(port: int, wsgi_port: int, env: dict[str, str], workers: int = 1) -> Portal:
    wsgi = start_wsgi(wsgi_port, env, workers)
    try:
        wait_healthy(wsgi, wsgi_port)
        front = {**env, "HITL_WSGI_UPSTREAM": f"http://127.0.0.1:{wsgi_port}"}
        asgi = start_uvicorn(port, front)
        wait_healthy(asgi, port)
    except BaseException:
        stop(wsgi)
        raise
    return Portal(port, wsgi_port, wsgi, asgi)


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
