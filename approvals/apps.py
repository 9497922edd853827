from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # The audit trail is the ledger's log (core.ledger knows no app: it is told).
        from approvals.models import AuditEvent
        from core import ledger

        ledger.register(AuditEvent)
