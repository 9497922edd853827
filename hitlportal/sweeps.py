"""All periodic sweeps in one entry point: the `sweep` command and the django-q2 schedule
both call `run_all`. Each sweep is safe to run concurrently on any number of clusters."""

from __future__ import annotations

from agents.sweeps import reconcile
from approvals.sweeps import expire_overdue
from hitlportal.housekeeping import housekeeping
from notifications import sweeps as notifications


def run_all() -> dict[str, dict[str, int]]:
    # Expiry first: the runs it resolves are resumed on commit, and reconcile then only has
    # to catch what the fast path lost.
    return {
        "expiry": expire_overdue(),
        "reconcile": reconcile(),
        "notifications": notifications.run(),
        "housekeeping": housekeeping(),
    }
