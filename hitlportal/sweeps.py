"""All periodic sweeps in one entry point: the `sweep` command and the django-q2 schedule
both call `run_all`. Each sweep is safe to run concurrently on any number of clusters."""

from __future__ import annotations

import time
from collections.abc import Callable

from agents.sweeps import reconcile
from approvals.sweeps import expire_overdue, mark_sla_breaches
from core.ledger.sequencer import sequence_pending
from core.ledger.witnesses import publish_due
from core.metrics import SWEEP_DURATION, SWEEP_RUNS
from hitlportal.housekeeping import housekeeping
from notifications import sweeps as notifications
from oversight.analytics import refresh_rollups
from oversight.drills import release_due


def _timed(name: str, sweep: Callable[[], dict[str, int]]) -> dict[str, int]:
    started = time.perf_counter()
    try:
        result = sweep()
    except Exception:
        SWEEP_RUNS.labels(name, "error").inc()
        raise
    finally:
        SWEEP_DURATION.labels(name).observe(time.perf_counter() - started)
    SWEEP_RUNS.labels(name, "ok").inc()
    return result


def ledger() -> dict[str, int]:
    """Sequence what is pending, then push the latest head to the witnesses that are due:
    what the standing sequencer does each round, for when none runs."""
    return {"sequenced": sequence_pending(), "witnessed": publish_due()}


def run_all() -> dict[str, dict[str, int]]:
    # SLA before expiry: an item whose SLA ends with its deadline is marked breached first.
    # Expiry before reconcile: the runs it resolves are resumed on commit, and reconcile then
    # only has to catch what the fast path lost. Notifications (reminders, digests, lost
    # deliveries) after those. Rollups after those, so they include all of it. The ledger
    # last: the safety net for a sequencer that is not running (a standing one holds the
    # lock, and this steps aside; the witnesses' claim keeps them from getting a head twice).
    return {
        "sla": _timed("sla", mark_sla_breaches),
        "expiry": _timed("expiry", expire_overdue),
        "drills": _timed("drills", release_due),
        "reconcile": _timed("reconcile", reconcile),
        "notifications": _timed("notifications", notifications.run),
        "housekeeping": _timed("housekeeping", housekeeping),
        "rollups": _timed("rollups", refresh_rollups),
        "ledger": _timed("ledger", ledger),
    }
