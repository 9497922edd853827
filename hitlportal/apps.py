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

        from hitlportal import schedules
        from hitlportal.auth import record_enrolment_as_mfa

        authenticator_added.connect(record_enrolment_as_mfa, dispatch_uid="hitl-mfa-enrolled")

        # Idempotent (update_or_create by name): migrating twice or starting two clusters
        # leaves exactly one schedule row per sweep.
        post_migrate.connect(
            schedules.ensure_schedules_after_migrate, dispatch_uid="hitl-schedules"
        )
