"""`runportal` (what `make run` calls): real processes, real HTTP, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_it_starts_web_and_cluster_and_stops_both_on_sigint(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DEBUG": "1",
            "HITL_VAR_DIR": str(tmp_path),
            "HITL_Q_SYNC": "0",
            "HITL_Q_NAME": f"runportal-test-{port}",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runportal", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        health = wait_for(f"http://127.0.0.1:{port}/api/v1/health/")
        # The demo key is printed once, when it is minted; links follow the port.
        seen = []
        for line in iter(proc.stdout.readline, ""):
            seen.append(line)
            if "hitl_a" in line:
                break
        key = seen[-1].strip()
        api = {"Authorization": f"Bearer {key}"}
        run = httpx.post(f"http://127.0.0.1:{port}/api/v1/runs/", json={"task": "t"}, headers=api)
        cp = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/checkpoints/",
            json={"run": run.json()["id"], "title": "t", "action": {"tool": "t", "args": {}}},
            headers=api,
        ).json()
        assert cp["review_url"].startswith(f"http://127.0.0.1:{port}/admin/")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        login = httpx.get(f"http://127.0.0.1:{port}/admin/", timeout=5, follow_redirects=True)
        assert login.status_code == 200 and "HITL Portal" in login.text
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 3  # the web server (every path) + portald + qcluster
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        out = "".join(seen) + out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    assert "Demo logins" in out
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        ), f"child {pid} still running"
    assert (tmp_path / "hitl.sqlite3").exists()
