from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from agents.api import artifacts, checkpoints, runs, wait
from agents.api.idempotency import IdempotentMixin
from approvals.api import views as review
from hitlportal import views


# approvals may not import agents, so the human decision endpoint gets the agents-side
# idempotency protocol here, where the two apps are wired together.
@extend_schema_view(post=review.decision_schema)
class DecisionView(IdempotentMixin, review.DecisionView):
    def perform_post(self, request, pk):
        return review.DecisionView.post(self, request, pk)


class HealthSchema(APIView):
    """For the OpenAPI schema only: `views.health` (a plain view, no auth) is what runs."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="health",
        tags=["health"],
        summary="Liveness and database reachability, for load balancers",
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField()}),
            503: inline_serializer(
                "HealthDown",
                {"status": serializers.CharField(), "detail": serializers.CharField()},
            ),
        },
    )
    def get(self, request):  # pragma: no cover - never routed
        raise NotImplementedError


# Plain views (not DRF): exempt from CSRF (nothing to forge: no session is used), so an
# unsupported method gets its 405 rather than a CSRF page.
health = csrf_exempt(require_safe(views.health))
checkpoint_wait = csrf_exempt(wait.checkpoint_wait)
checkpoint_wait.cls = wait.CheckpointWaitSchema
checkpoint_wait.initkwargs = {}
health.cls = HealthSchema
health.initkwargs = {}

urlpatterns = [
    path("health/", health, name="api-health"),
    # agents
    path("runs/", runs.RunListCreateView.as_view(), name="api-runs"),
    path("runs/<uuid:pk>/", runs.RunDetailView.as_view(), name="api-run"),
    path("runs/<uuid:pk>/complete/", runs.RunCompleteView.as_view(), name="api-run-complete"),
    path("runs/<uuid:pk>/events/", runs.RunEventsView.as_view(), name="api-run-events"),
    path("checkpoints/", checkpoints.CheckpointListCreateView.as_view(), name="api-checkpoints"),
    path(
        "checkpoints/<uuid:pk>/", checkpoints.CheckpointDetailView.as_view(), name="api-checkpoint"
    ),
    path("checkpoints/<uuid:pk>/wait", checkpoint_wait, name="api-checkpoint-wait"),
    path(
        "checkpoints/<uuid:pk>/cancel/",
        checkpoints.CheckpointCancelView.as_view(),
        name="api-checkpoint-cancel",
    ),
    path("artifacts/", artifacts.ArtifactUploadView.as_view(), name="api-artifacts"),
    path("artifacts/<uuid:pk>/", artifacts.ArtifactDetailView.as_view(), name="api-artifact"),
    path(
        "artifacts/<uuid:pk>/content/",
        artifacts.ArtifactContentView.as_view(),
        name="api-artifact-content",
    ),
    # people
    path("queue/", review.QueueView.as_view(), name="api-queue"),
    path("checkpoints/<uuid:pk>/decision/", DecisionView.as_view(), name="api-decision"),
]
