"""The executor lease of a hosted run: only the holder of `Run.lease_owner` may save the run's
state. A heartbeat renews it while slow work runs, so it lapses only when the worker is gone;
then the reconcile sweep hands the run to another worker."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from agents.models import Run

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another executor took over (our lease lapsed) or the run left `running`."""


def _lease_seconds() -> int:
    return settings.HITL_RUN_LEASE


def expiry():
    return timezone.now() + timezone.timedelta(seconds=_lease_seconds())


def acquire_lease(run_id, owner: str) -> bool:
    now = timezone.now()
    return bool(
        Run.objects.filter(pk=run_id, status=Run.Status.RUNNING)
        .filter(Q(lease_owner="") | Q(lease_expires_at__lt=now))
        .update(lease_owner=owner, lease_expires_at=expiry())
    )


@contextmanager
def heartbeat(run_id, owner: str):
    """Renew the lease from a side thread while slow work (a tool, an LLM call) runs, so the
    lease lapses only when the process is gone."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(_lease_seconds() / 3):
                if not Run.objects.filter(pk=run_id, lease_owner=owner).update(
                    lease_expires_at=expiry()
                ):
                    return
        except Exception:
            log.exception("lease heartbeat for run %s failed", run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"lease-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
