"""django-q2 tasks of the approvals app (they take ids and are safe to run twice)."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from approvals.models import Replay
from approvals.policies import replay

log = logging.getLogger(__name__)

S = Replay.Status


def replay_run(replay_id: str) -> str:
    """Run a queued replay and write its progress and result on its row. Claimed by a
    conditional update: a second delivery of the task finds it running (or done) and does
    nothing, unless the first worker died (running for longer than the task lease, the
    broker's `retry`): then it runs again, at most three times, else it is marked failed."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.Q_CLUSTER["retry"])
    claimable = Q(status=S.QUEUED) | Q(status=S.RUNNING, started_at__lt=stale)
    rows = Replay.objects.filter(claimable, pk=replay_id)
    if rows.filter(attempts__gte=3).update(
        status=S.FAILED, error="It did not finish in three attempts.", finished_at=now
    ):
        return S.FAILED
    if not rows.update(status=S.RUNNING, started_at=now, attempts=F("attempts") + 1):
        return "skipped"  # done, failed, or another worker has it
    run = Replay.objects.select_related("version").get(pk=replay_id)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        # At most a few writes a second: the page polls the row.
        if time.monotonic() - last[0] >= 0.5 or done == 0:
            last[0] = time.monotonic()
            Replay.objects.filter(pk=run.pk).update(progress=done, total=total)

    try:
        result = replay.replay(run.version, days=run.days, now=run.created_at, progress=progress)
    except Exception as exc:  # recorded on the row for the page; the log has the trace
        log.exception("replay %s failed", run.pk)
        Replay.objects.filter(pk=run.pk).update(
            status=S.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        return S.FAILED
    Replay.objects.filter(pk=run.pk).update(
        status=S.DONE,
        result=replay.result_data(result),
        progress=result.checkpoints,
        total=result.checkpoints,
        finished_at=timezone.now(),
    )
    return S.DONE
