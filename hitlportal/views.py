from django.db import connection
from django.http import HttpRequest, JsonResponse


def health(request: HttpRequest) -> JsonResponse:
    """Liveness + database reachability, for load balancers. No auth, no session."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok"})
    except Exception as exc:  # pragma: no cover - exercised only when the DB is down
        return JsonResponse({"status": "error", "detail": str(exc)[:200]}, status=503)
