"""People's API tokens (for the CLI and scripts)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.tokens import ApiTokenBase


class UserToken(ApiTokenBase):
    """A person's API token (for the CLI and scripts). Stored as prefix + hash; shown once.

    A token reads (its owner's queue, checkpoints, runs) or, with the decide scope, decides
    too. Where MFA is required, only a token minted from a session that passed MFA
    (`mfa_verified_at`) may decide."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        DECIDE = "decide", "Read and decide"
        # Where step-up applies (MFA), a token decides critical-risk requests only with this.
        DECIDE_CRITICAL = "decide_critical", "Read and decide, critical requests too"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    scope = models.CharField(max_length=20, choices=Scope.choices, default=Scope.READ)
    mfa_verified_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the session that minted it last passed MFA (empty: it did not).",
    )

    def __str__(self) -> str:
        return f"{self.user} {self.prefix}"
