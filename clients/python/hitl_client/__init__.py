"""Python client and `hitl` CLI for the HITL Portal API (stdlib + httpx, no Django)."""

from hitl_client._version import __version__ as __version__
from hitl_client.client import HitlClient
from hitl_client.errors import (
    ApiError,
    ApprovalRejected,
    ConflictError,
    HitlError,
    IncompatibleServer,
    NotFound,
    WaitTimeout,
)
from hitl_client.models import Checkpoint, Rejection, Run
from hitl_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "ApiError",
    "ApprovalRejected",
    "Checkpoint",
    "ConflictError",
    "HitlClient",
    "HitlError",
    "IncompatibleServer",
    "NotFound",
    "Rejection",
    "Run",
    "WaitTimeout",
    "WebhookVerificationError",
    "verify_webhook",
]
