from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate


class HitlPortalAdminConfig(AdminConfig):
    default_site = "hitlportal.admin.HitlAdminSite"


class HitlPortalConfig(AppConfig):
    name = "hitlportal"
    verbose_name = "HITL Portal"

    def ready(self) -> None:
        from allauth.mfa.signals import authenticator_added
        from django_q.signals import post_spawn

        from hitlportal import schedules
        from hitlportal.auth import record_enrolment_as_mfa

        authenticator_added.connect(record_enrolment_as_mfa, dispatch_uid="hitl-mfa-enrolled")

        # Idempotent (update_or_create by name): migrating twice or starting two clusters
        # leaves exactly one schedule row per sweep.
        post_migrate.connect(
            schedules.ensure_schedules_after_migrate, dispatch_uid="hitl-schedules"
        )
        # Every task cluster runs the deadline timer (expiry on the second); django-q2 sends
        # this in each worker process it spawns, and a lease elects one leader among them.
        post_spawn.connect(start_deadline_timer, dispatch_uid="hitl-deadline-timer")


def start_deadline_timer(sender, proc_name: str = "", **kwargs) -> None:
    from django_q.conf import Conf

    from approvals.deadlines import start_in_background

    # Sync mode (tests) runs each task through django-q2's worker function in this very
    # process: that is no cluster.
    if not Conf.SYNC:
        start_in_background()
