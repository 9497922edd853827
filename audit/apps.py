from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        # The audit trail is the ledger's log (core.ledger knows no app: it is told).
        from audit.models import AuditEvent
        from core import ledger

        ledger.register(AuditEvent)
