"""GET /api/v1/health/: liveness and database reachability, for load balancers, and the
portal's versions, which clients check on first contact. A plain Django view (no
authentication, no session, no throttling): it must answer even when the API's own machinery
cannot."""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from core.version import API_VERSION, __version__

log = logging.getLogger(__name__)


VERSIONS = {"version": __version__, "api_version": API_VERSION}


def health(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok", **VERSIONS})
    except Exception:
        # The reason (host, port, credentials) goes to the log, never to an anonymous caller.
        log.exception("health check: the database does not answer")
        return JsonResponse(
            {"status": "error", "detail": "database unavailable", **VERSIONS}, status=503
        )


def _versions() -> dict[str, serializers.Field]:
    return {
        "version": serializers.CharField(help_text="The portal's release (hitl-portal)."),
        "api_version": serializers.CharField(
            help_text="The REST API's version, MAJOR.MINOR: a minor adds, a major removes or "
            "changes. A client works with the same major and the same or a newer minor."
        ),
    }


class HealthSchema(APIView):
    """No authentication. 200 while the database answers, 503 when it does not."""

    # Documents `health` for the OpenAPI schema (see `api.schema.document_view`); never routed.

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="health",
        tags=["health"],
        summary="Liveness and database reachability, for load balancers",
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField(), **_versions()}),
            503: inline_serializer(
                "HealthDown",
                {
                    "status": serializers.CharField(),
                    "detail": serializers.CharField(),
                    **_versions(),
                },
            ),
        },
    )
    def get(self, request):  # pragma: no cover - never routed
        raise NotImplementedError
