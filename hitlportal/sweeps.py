"""All periodic sweeps in one entry point: the `sweep` command and the django-q2 schedule
both call `run_all`."""

from __future__ import annotations

from agents.sweeps import reconcile
from approvals.sweeps import expire_overdue


def run_all() -> dict[str, dict[str, int]]:
    return {"expiry": expire_overdue(), "reconcile": reconcile()}
