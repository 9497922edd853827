from django.apps import AppConfig


class OversightConfig(AppConfig):
    name = "oversight"
    verbose_name = "Oversight"

    def ready(self) -> None:
        from oversight import drills  # noqa: F401  (finishes a drill when its checkpoint resolves)
