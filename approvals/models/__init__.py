"""The human side: checkpoints, their artifacts and decisions, routing policies, people's
tokens. One module per concern; every model is importable from here.

Status fields are changed only by `approvals.transitions`; nothing else assigns them.
"""

from approvals.models.checkpoints import Artifact, Checkpoint, CheckpointView, Decision, ShadowMatch
from approvals.models.choices import (
    AUTOMATIC_OUTCOMES,
    RISK_ORDER,
    ExpiryAction,
    PolicyOutcome,
    Risk,
)
from approvals.models.policies import Policy, PolicyGeneration, PolicyVersion, Replay
from approvals.models.tokens import UserToken

__all__ = [
    "AUTOMATIC_OUTCOMES",
    "RISK_ORDER",
    "Artifact",
    "Checkpoint",
    "CheckpointView",
    "Decision",
    "ExpiryAction",
    "Policy",
    "PolicyGeneration",
    "PolicyOutcome",
    "PolicyVersion",
    "Replay",
    "Risk",
    "ShadowMatch",
    "UserToken",
]
