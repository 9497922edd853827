"""Leader election through a lease row: any number of processes may call `hold(name, me)`
every few seconds; exactly one holds the lease at a time, and when it stops renewing (its
process died) another takes over once the lease has run out. Works the same on SQLite and
PostgreSQL (a conditional UPDATE, rows-affected checked; the first taker INSERTs)."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.models import Lease


def hold(name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease `name` for `seconds`; True while `holder` has it."""
    now = timezone.now()
    until = now + dt.timedelta(seconds=seconds)
    with transaction.atomic():
        taken = (
            Lease.objects.filter(name=name)
            .filter(Q(holder=holder) | Q(expires_at__lte=now))
            .update(holder=holder, expires_at=until)
        )
        if taken:
            return True
        if Lease.objects.filter(name=name).exists():
            return False
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=until)
        return True
    except IntegrityError:
        return False  # another process created it first


def release(name: str, holder: str) -> None:
    """Give the lease up now (a clean shutdown), if `holder` has it."""
    Lease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now())
