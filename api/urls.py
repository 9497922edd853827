"""/api/v1/: every route of the REST API."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from api import artifacts, checkpoints, health, ledger, receipts, review, runs, wait
from api.schema import document_view

# Plain views (not DRF): exempt from CSRF (nothing to forge: no session is used), so an
# unsupported method gets its 405 rather than a CSRF page.
health_view = csrf_exempt(require_safe(health.health))
document_view(health_view, health.HealthSchema)
wait_view = csrf_exempt(wait.checkpoint_wait)

urlpatterns = [
    path("health/", health_view, name="api-health"),
    # agents
    path("runs/", runs.RunListCreateView.as_view(), name="api-runs"),
    path("runs/<uuid:pk>/", runs.RunDetailView.as_view(), name="api-run"),
    path("runs/<uuid:pk>/complete/", runs.RunCompleteView.as_view(), name="api-run-complete"),
    path("runs/<uuid:pk>/events/", runs.RunEventsView.as_view(), name="api-run-events"),
    path("checkpoints/", checkpoints.CheckpointListCreateView.as_view(), name="api-checkpoints"),
    path(
        "checkpoints/<uuid:pk>/", checkpoints.CheckpointDetailView.as_view(), name="api-checkpoint"
    ),
    path("checkpoints/<uuid:pk>/wait", wait_view, name="api-checkpoint-wait"),
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
    path("checkpoints/<uuid:pk>/decision/", review.DecisionView.as_view(), name="api-decision"),
    # the ledger and receipts
    path("ledger/head", ledger.LedgerHeadView.as_view(), name="api-ledger-head"),
    path("ledger/keys", ledger.LedgerKeysView.as_view(), name="api-ledger-keys"),
    path("ledger/entries", ledger.LedgerEntriesView.as_view(), name="api-ledger-entries"),
    path(
        "ledger/proof/inclusion",
        ledger.InclusionProofView.as_view(),
        name="api-ledger-proof-inclusion",
    ),
    path(
        "ledger/proof/consistency",
        ledger.ConsistencyProofView.as_view(),
        name="api-ledger-proof-consistency",
    ),
    path("receipts/verify/", receipts.ReceiptVerifyView.as_view(), name="api-receipts-verify"),
    path("receipts/redeem/", receipts.ReceiptRedeemView.as_view(), name="api-receipts-redeem"),
]
