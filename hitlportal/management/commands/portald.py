"""`manage.py portald`: the portal's standing leaders in one process, each loop in a thread of
its own (`core.leader`): the ledger's sequencer (`manage.py sequencer` runs it alone), the
deadline timer (`approvals.deadlines`; HITL_DEADLINE_TIMER=0 leaves it out, the minute sweep
then expires alone) and the backlog watch (`core.backlog`: a warning in the log while the task
cluster falls behind; outside the task queue, so a backlog cannot delay it). Run one or more,
on any machine: in each loop one process leads and the others stand by. SIGINT / SIGTERM stop
them at the end of their round."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from approvals.deadlines import DeadlineTimer
from core.backlog import BacklogWatch
from core.management.commands.sequencer import Loop, stop_on_signals


class Command(BaseCommand):
    help = (
        "Run the ledger's sequencer, the deadline timer and the backlog watch (one leads each; "
        "others stand by)."
    )

    def handle(self, *args, **opts):
        loops = [Loop()]
        if settings.HITL_DEADLINE_TIMER:
            loops.append(DeadlineTimer())
        loops.append(BacklogWatch())
        stop_on_signals(*loops)
        threads = [
            threading.Thread(target=loop.run, name="hitl-" + loop.name.replace(" ", "-"))
            for loop in loops
        ]
        for thread in threads:
            thread.start()
        # the main thread stays free for the signals; a loop that ends (an error it does not
        # retry) stops the others, and the process exits with an error
        while all(thread.is_alive() for thread in threads):
            threads[0].join(0.2)
        crashed = not all(loop.stop.is_set() for loop in loops)
        for loop in loops:
            loop.stop.set()
        for thread in threads:
            thread.join()
        if crashed:
            raise SystemExit(1)
