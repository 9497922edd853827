"""Real `manage.py qcluster` (and `manage.py portald`) processes for the tests that are about
them (crashes, latency, the schedule, the deadline timer). The `clusters` fixture
(tests/conftest.py) starts them on a queue of their own, against the test database; the
`daemons` fixture starts `portald` processes beside them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings


def wait_for(check, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Cluster:
    """One `qcluster` (or other `command`) process group, started and stopped by pid."""

    def __init__(self, env: dict, log: Path, command: str = "qcluster"):
        self.env, self.log, self.command = env, log, command
        self.proc: subprocess.Popen | None = None

    def start(self) -> Cluster:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), self.command],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
