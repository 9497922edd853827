"""All periodic sweeps in one entry point: the `sweep` command and the django-q2 schedule
both call `run_all`. Each sweep is safe to run concurrently on any number of clusters."""

from __future__ import annotations

from agents.sweeps import reconcile
from approvals.sweeps import expire_overdue
from core.ledger.sequencer import sequence_pending
from hitlportal.housekeeping import housekeeping


def run_all() -> dict[str, dict[str, int]]:
    # Expiry first: the runs it resolves are resumed on commit, and reconcile then only has
    # to catch what the fast path lost.
    # The ledger last: the safety net for a sequencer that is not running (a standing one
    # holds the lock, and this steps aside).
    return {
        "expiry": expire_overdue(),
        "reconcile": reconcile(),
        "housekeeping": housekeeping(),
        "ledger": {"sequenced": sequence_pending()},
    }
