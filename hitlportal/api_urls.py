from django.urls import path
from drf_spectacular.utils import extend_schema_view

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


urlpatterns = [
    path("health/", views.health, name="api-health"),
    # agents
    path("runs/", runs.RunListCreateView.as_view(), name="api-runs"),
    path("runs/<uuid:pk>/", runs.RunDetailView.as_view(), name="api-run"),
    path("runs/<uuid:pk>/complete/", runs.RunCompleteView.as_view(), name="api-run-complete"),
    path("runs/<uuid:pk>/events/", runs.RunEventsView.as_view(), name="api-run-events"),
    path("checkpoints/", checkpoints.CheckpointListCreateView.as_view(), name="api-checkpoints"),
    path("checkpoints/<uuid:pk>/", checkpoints.CheckpointDetailView.as_view(),
         name="api-checkpoint"),
    path("checkpoints/<uuid:pk>/wait", wait.checkpoint_wait, name="api-checkpoint-wait"),
    path("checkpoints/<uuid:pk>/cancel/", checkpoints.CheckpointCancelView.as_view(),
         name="api-checkpoint-cancel"),
    path("artifacts/", artifacts.ArtifactUploadView.as_view(), name="api-artifacts"),
    path("artifacts/<uuid:pk>/", artifacts.ArtifactDetailView.as_view(), name="api-artifact"),
    path("artifacts/<uuid:pk>/content/", artifacts.ArtifactContentView.as_view(),
         name="api-artifact-content"),
    # people
    path("queue/", review.QueueView.as_view(), name="api-queue"),
    path("checkpoints/<uuid:pk>/decision/", DecisionView.as_view(), name="api-decision"),
]
