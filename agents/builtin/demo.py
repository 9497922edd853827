"""Sandbox data for the built-in agents (`seed_demo`, so `make run` can demo them at once):
old and new log files, a git working copy, a SQLite shop database. Each piece is created only
if it is missing (idempotent); `reset=True` recreates them."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

from agents.builtin.code_patcher import GIT_ENV

DAY = 86400
LOGS = {  # name: age in days
    "app.log": 30,
    "app.1.log": 21,
    "worker/worker.log": 12,
    "worker/worker.2.log": 9,
    "access.log": 2,
    "current.log": 0,
    "notes.txt": 40,  # not *.log: never a candidate
}
SETTINGS_PY = 'import os\n\nDEBUG = True\nALLOWED_HOSTS = ["*"]\nTIME_ZONE = "UTC"\n'


def make_logs(root: Path) -> None:
    now = time.time()
    for name, age in LOGS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"2026-01-01T00:00:{i:02d} INFO line {i}\n" for i in range(60)))
        os.utime(path, (now - age * DAY, now - age * DAY))


def make_repo(root: Path) -> None:
    (root / "app").mkdir(parents=True)
    (root / "app" / "settings.py").write_text(SETTINGS_PY)
    (root / "README.md").write_text("# sample-repo\n\nA working copy for the code-patcher demo.\n")
    env = {**os.environ, **GIT_ENV}
    for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "Initial"]):
        subprocess.run(["git", "-C", str(root), *cmd], check=True, env=env, capture_output=True)


def make_shop(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, "
            "created TEXT NOT NULL, status TEXT NOT NULL, total_cents INTEGER NOT NULL)"
        )
        rows = []
        for i in range(1, 41):
            year = 2018 + i % 8  # 2018..2025: ten orders before 2020
            rows.append(
                (
                    i,
                    f"customer-{i % 7}",
                    f"{year}-0{1 + i % 9}-15",
                    "open" if i % 3 else "shipped",
                    1000 + 37 * i,
                )
            )
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", rows)


def ensure_sandbox(root: Path, *, reset: bool = False) -> list[str]:
    """Create what is missing; returns what was (re)created."""
    root.mkdir(parents=True, exist_ok=True)
    made = []
    pieces = (("logs", make_logs), ("sample-repo", make_repo), ("shop.sqlite3", make_shop))
    for name, make in pieces:
        path = root / name
        if reset and path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        if not path.exists():
            make(path)
            made.append(name)
    return made
