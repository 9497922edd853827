"""The choices several models share: risk, what an expiry does, what a policy does."""

from __future__ import annotations

from django.db import models


class Risk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


RISK_ORDER = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2, Risk.CRITICAL: 3}


class ExpiryAction(models.TextChoices):
    REJECT = "reject", "Auto-reject"
    ESCALATE = "escalate", "Escalate"


class PolicyOutcome(models.TextChoices):
    ROUTE = "route", "Route to reviewers"
    AUTO_APPROVE = "auto_approve", "Approve automatically"
    AUTO_REJECT = "auto_reject", "Reject automatically"


AUTOMATIC_OUTCOMES = (PolicyOutcome.AUTO_APPROVE, PolicyOutcome.AUTO_REJECT)
