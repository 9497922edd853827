"""A real outage of the test database, for a live portal started on `DatabaseOutage.url`.

While it is down the portal's new connections fail as they do when a database server is
unreachable (Django raises OperationalError; the API answers `503 database_unavailable`), and
the test process's own connection keeps working, so a test can count rows meanwhile:

- SQLite: the portal opens the file through a symlinked directory; `down()` points the link at
  a directory that does not exist (the trick of tests/api/test_bad_text_and_outages.py), `up()`
  back at the real one. The portal opens a connection per request (CONN_MAX_AGE 0).
- PostgreSQL: `ALTER DATABASE ... ALLOW_CONNECTIONS false` (new connections are refused) and
  the portal's open connections ended, as a restarting server ends them (`kill_open=True`, the
  default); then connections allowed again.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.db import connection

from tests.api.live import test_database_url


class DatabaseOutage:
    def __init__(self, tmp_path: Path):
        self.vendor = connection.vendor
        if self.vendor == "sqlite":
            real = Path(connection.settings_dict["NAME"]).resolve()
            self._real_dir = real.parent
            self._link = tmp_path / "db"
            self._missing = tmp_path / "no-such-dir"
            self._link.symlink_to(self._real_dir, target_is_directory=True)
            self.url = f"sqlite:///{self._link / real.name}"
        else:
            self._name = connection.settings_dict["NAME"]
            self.url = test_database_url()
            with connection.cursor() as cursor:  # this process's own connection stays
                cursor.execute("SELECT pg_backend_pid()")
                self._own_pid = cursor.fetchone()[0]

    def _point_link_at(self, target: Path) -> None:
        fresh = self._link.with_name("db.new")
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(target, target_is_directory=True)
        os.replace(fresh, self._link)  # atomic: a connection sees the old or the new target

    def _allow_connections(self, allow: bool, kill_open: bool = False) -> None:
        # PostgreSQL refuses this for the database one is connected to: say it from another.
        import psycopg

        s = connection.settings_dict
        with psycopg.connect(
            host=s["HOST"] or "127.0.0.1",
            port=s["PORT"] or 5432,
            user=s["USER"],
            password=s["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        ) as admin:
            name = connection.ops.quote_name(self._name)
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allow).lower()}")
            if kill_open:  # every connection to it but this test process's own
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> %s",
                    (self._name, self._own_pid),
                )

    def down(self, kill_open: bool = True) -> None:
        if self.vendor == "sqlite":
            self._point_link_at(self._missing)
        else:
            self._allow_connections(False, kill_open)

    def up(self) -> None:
        if self.vendor == "sqlite":
            self._point_link_at(self._real_dir)
        else:
            self._allow_connections(True)
