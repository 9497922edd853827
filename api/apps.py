from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        # Long-poll waiters are woken by a receiver of approvals' signals.
        from api import metrics, waiters  # noqa: F401  (metrics: time to decision)
