"""django-q2 schedules, registered idempotently by name (django-q2 has no unique constraint on
Schedule.name, so duplicates from older races are removed too)."""

from __future__ import annotations

SCHEDULES = {
    "hitl-sweep": {
        "func": "hitlportal.sweeps.run_all",
        "schedule_type": "I",  # minutes
        # Every minute (the docs promise expiry "up to a minute late" without portald's timer).
        "minutes": 1,
    },
    # SQLite planner statistics for the review queue (see hitlportal/dbmaint.py).
    "hitl-db-analyze": {
        "func": "hitlportal.dbmaint.analyze",
        "schedule_type": "I",
        "minutes": 60,
    },
}


def ensure_schedules() -> None:
    from django_q.models import Schedule

    for name, spec in SCHEDULES.items():
        rows = list(Schedule.objects.filter(name=name).order_by("id"))
        for extra in rows[1:]:
            extra.delete()
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": spec["func"],
                "schedule_type": spec["schedule_type"],
                "minutes": spec["minutes"],
                "repeats": -1,
            },
        )


def ensure_schedules_after_migrate(sender, using="default", **kwargs) -> None:
    # post_migrate fires once per app; act once, after django_q's tables exist.
    if sender.label != "django_q":
        return
    from django.db import connections

    if "django_q_schedule" in connections[using].introspection.table_names():
        ensure_schedules()
