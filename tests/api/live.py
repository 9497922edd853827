"""A real portal for tests that are about real HTTP, as `make run` serves it: one ASGI server
(granian, hitlportal.asgi: every path, long-poll in its event loop), on 127.0.0.1 (a port
the OS picks), on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import time

from django.db import connection

from tests import servers


def free_port(skip: int | None = None) -> int:
    """A port the OS says is free (an ephemeral one: other test runs on this machine use
    fixed ranges; HITL_TEST_PORTS=18700-18799 confines this run to one). `skip`: one already
    chosen but not bound yet."""
    if ports := os.environ.get("HITL_TEST_PORTS"):
        low, _, high = ports.partition("-")
        for port in range(int(low), int(high) + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            if port != skip:
                return port
        raise RuntimeError(f"no free port in HITL_TEST_PORTS={ports}")
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != skip:
            return port


def test_database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class LivePortal:
    def __init__(self, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DEBUG": "1",
            "DATABASE_URL": test_database_url(),
            "HITL_Q_SYNC": "1",
            "HITL_FAST_HASHER": "1",
            "HITL_SITE_URL": f"http://127.0.0.1:{self.port}",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.servers: servers.Portal | None = None

    @property
    def proc(self) -> subprocess.Popen | None:
        """The web server process (where waiters are parked)."""
        return self.servers.proc if self.servers else None

    def start(self) -> LivePortal:
        for _attempt in range(3):
            try:
                self.servers = servers.start_portal(self.port, self.env)
                return self
            except RuntimeError as exc:
                if "exited" not in str(exc):  # it ran but never answered: a real failure
                    raise
            # The server exited at once (the port was taken between choosing and binding): another.
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.env["HITL_SITE_URL"] = self.url
        raise RuntimeError("the portal could not bind a port")

    def stop(self) -> None:
        if self.servers is not None:
            self.servers.stop()

    def wait_for_sessions_to_close(self) -> None:
        """PostgreSQL ends a closed client's backend asynchronously; dropping the test
        database right after the server exits could still see it."""
        if connection.vendor != "postgresql":
            return
        deadline = time.monotonic() + 10
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.1)
