"""What an agent asks a human: one typed object from the edge to the row.

The REST API's serializer, HumanLayer's and MCP's fronts, the hosted runtime and the drills
each build a `CheckpointRequest`; `agents.services.ask` checks it against the limits
(`check_ask`) and `approvals.transitions.checkpoint_request` turns it into a routed
checkpoint as it is, field for field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from approvals.artifacts import ArtifactInput
from approvals.models import Checkpoint, Risk


@dataclass
class CheckpointRequest:
    """One question for a human (the run it belongs to is given beside it)."""

    title: str
    kind: str = Checkpoint.Kind.APPROVAL
    summary: str = ""
    action: dict | None = None
    context: dict | None = None
    risk: str = Risk.MEDIUM
    options: list | None = None
    role_hint: str = ""
    expires_in: int | None = None
    idempotency_key: str = ""
    requester: Any = None  # default: whoever started the run
    artifacts: list[ArtifactInput] = field(default_factory=list)
    # The client's own id (see `agents.services.ask_once`), the fingerprint of the request
    # that carried it, the outcomes reviewers may choose (empty: what the kind takes, checked
    # by `rules.check_allowed_outcomes`) and named reject reasons.
    external_id: str = ""
    request_sha256: str = ""
    allowed_outcomes: list[str] = field(default_factory=list)
    reject_options: list[dict] = field(default_factory=list)
    confidence: float | None = None  # the agent's own confidence in the action, 0..1
    drill: Any = None  # a manager's Drill: asked like this, resumes nothing
