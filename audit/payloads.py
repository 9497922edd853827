"""The shape of each audit verb's `data`: one TypedDict per verb, the keys its writers put
there. `PAYLOADS` maps every `AuditVerb` to its type; with `STRICT` on (the test suite turns
it on) `audit.events.record` refuses a key the verb's type does not declare, so no writer adds
or renames a key without this file saying so, where the readers (the describers in
`oversight/describe.py`, the exports, the metrics) look.

Every key is optional (`total=False`): events written before a key existed still read."""

from __future__ import annotations

from typing import Any, TypedDict

from audit.models import AuditVerb as V

Json = Any  # a JSON value as stored (datetimes as ISO strings)

# Refuse undeclared keys (tests/conftest.py turns it on): off in production, where an event
# is never lost for a key.
STRICT = False


class Values(TypedDict, total=False):
    """Something created: its audited fields (`audit.snapshot`)."""

    values: dict[str, Json]


class Changes(TypedDict, total=False):
    """Something changed: {field: [old, new]} (`audit.changes`)."""

    changes: dict[str, list]


# agent/user/group/channel .deleted: the deleted row's audited fields as they were, flat (the
# admin's `snapshot` of that model): open, as the model's audited fields are.
Snapshot = dict[str, Json]


class Empty(TypedDict, total=False):
    """Nothing beyond who, what and when."""


class Resolution(TypedDict, total=False):
    """checkpoint.approved / rejected / answered / expired / cancelled."""

    decision: int | None
    reason: str
    answer: str
    edited: bool
    final_action_sha256: str
    receipt: dict[str, Json]


class CheckpointRequested(TypedDict, total=False):
    run: str
    kind: str
    title: str
    risk: str
    confidence: float | None
    action_sha256: str
    stages: list[dict[str, Json]]
    policy: str | None
    policy_version: int | None
    outcome: str
    routing: list[Json]
    shadow: list[dict[str, Json]]
    deadline: str
    artifacts: list[dict[str, str]]
    external_id: str
    allowed_outcomes: list[str]


class CheckpointViewed(TypedDict, total=False):
    channel: str
    stage: int
    status: str


class CheckpointClaimed(TypedDict, total=False):
    until: str


class CheckpointReleased(TypedDict, total=False):
    from_: str  # stored as "from"


class CheckpointReassigned(TypedDict, total=False):
    from_: str  # stored as "from"
    to: str


class StageAdvanced(TypedDict, total=False):
    stage: int
    role: str
    approvals_needed: int


class Escalated(TypedDict, total=False):
    role: str
    step: int
    steps: int
    deadline: str


class SlaBreached(TypedDict, total=False):
    role: str
    policy: int | None
    sla_seconds: int
    due: str
    late_by_seconds: float


class OutcomeReceived(TypedDict, total=False):
    via: str  # api, webhook, resume


class DecisionRecorded(TypedDict, total=False):
    decision: int
    outcome: str
    stage: int
    role: str
    channel: str
    comment: str
    answer: str
    action_sha256: str
    action_diff: str
    edited_action: dict[str, Json] | None
    edited_artifacts: list[dict[str, Json]]


class DecisionAutomatic(TypedDict, total=False):
    decision: int
    outcome: str
    policy: str
    policy_version: int
    condition: str
    match: dict[str, Json]
    reason: str
    action_sha256: str


class ReceiptRedeemed(TypedDict, total=False):
    receipt: str
    approval_seq: int
    action_sha256: str
    redeemer: str


class RunStarted(TypedDict, total=False):
    agent: str
    task: str


class RunWaiting(TypedDict, total=False):
    checkpoint: str | None


class RunResumed(TypedDict, total=False):
    checkpoints: list[list[str]]  # [checkpoint id, status]


class RunFinished(TypedDict, total=False):
    """run.completed / failed / cancelled."""

    result: dict[str, Json] | None
    error: str


class RunStep(TypedDict, total=False):
    """run.step_executed / step_failed."""

    key: str
    tool: str
    args_sha256: str
    approved_sha256: str | None
    checkpoint: str | None
    error: str


class Delivery(TypedDict, total=False):
    """webhook.delivered / failed / resent."""

    delivery: str
    checkpoint: str
    event: str
    attempts: int
    last_error: str


class NotificationFailed(TypedDict, total=False):
    checkpoint: str
    event: str
    channel: str
    target: str
    attempts: int
    last_error: str


class NotificationResent(TypedDict, total=False):
    event: str
    channel: str
    target: str


class ChannelUpdated(TypedDict, total=False):
    changes: dict[str, list]
    replaced: list[str]  # write-only secrets replaced (their names, never their values)
    url: str


class UserAway(TypedDict, total=False):
    until: str
    note: str


class ChatLinked(TypedDict, total=False):
    provider: str
    team: str
    chat_user: str
    name: str


class AgentCreated(TypedDict, total=False):
    values: dict[str, Json]
    slug: str
    kind: str


class AgentKeyCreated(TypedDict, total=False):
    name: str
    prefix: str


class Prefix(TypedDict, total=False):
    """agent.key_revoked / user.token_revoked: which key (its public prefix)."""

    prefix: str


class AgentHalted(TypedDict, total=False):
    reason: str
    cancelled_checkpoints: int
    cancelled_runs: list[str]


class AgentResumed(TypedDict, total=False):
    note: str
    halted_at: str
    halted_by: str
    halt_reason: str


class TokenCreated(TypedDict, total=False):
    name: str
    prefix: str
    scope: str
    expires_at: str
    mfa_verified_at: str | None


class PolicyValues(TypedDict, total=False):
    """policy.created / proposed."""

    values: dict[str, Json]
    version: int


class PolicyUpdated(TypedDict, total=False):
    changes: dict[str, list]
    version: int


class PolicyMoved(TypedDict, total=False):
    """policy.published / rolled_back: to `version` from `previous`."""

    version: int
    previous: int | None
    note: str
    changes: dict[str, list]


class PolicyRevoked(TypedDict, total=False):
    version: int
    reason: str


class PolicyReplayed(TypedDict, total=False):
    version: int
    replay: str
    days: int


class DrillScheduled(TypedDict, total=False):
    name: str
    title: str
    agent: str
    scenario: str
    defect: str
    source: str | None
    release_at: str


class DrillReleased(TypedDict, total=False):
    checkpoint: str
    run: str
    role: str


class DrillFinished(TypedDict, total=False):
    checkpoint: str
    status: str
    outcome: str
    votes: list[list[str]]


class ExportCreated(TypedDict, total=False):
    what: str
    format: str
    filters: dict[str, Json]


class AuditVerified(TypedDict, total=False):
    ok: bool
    checked: int
    bad_seq: int | None
    problem: str


PAYLOADS: dict[str, type] = {
    V.RUN_STARTED: RunStarted,
    V.RUN_WAITING: RunWaiting,
    V.RUN_RESUMED: RunResumed,
    V.RUN_COMPLETED: RunFinished,
    V.RUN_FAILED: RunFinished,
    V.RUN_CANCELLED: RunFinished,
    V.RUN_STEP_EXECUTED: RunStep,
    V.RUN_STEP_FAILED: RunStep,
    V.CHECKPOINT_REQUESTED: CheckpointRequested,
    V.CHECKPOINT_CLAIMED: CheckpointClaimed,
    V.CHECKPOINT_RELEASED: CheckpointReleased,
    V.CHECKPOINT_REASSIGNED: CheckpointReassigned,
    V.CHECKPOINT_STAGE_ADVANCED: StageAdvanced,
    V.CHECKPOINT_ESCALATED: Escalated,
    V.CHECKPOINT_APPROVED: Resolution,
    V.CHECKPOINT_REJECTED: Resolution,
    V.CHECKPOINT_ANSWERED: Resolution,
    V.CHECKPOINT_EXPIRED: Resolution,
    V.CHECKPOINT_CANCELLED: Resolution,
    V.CHECKPOINT_VIEWED: CheckpointViewed,
    V.CHECKPOINT_SLA_BREACHED: SlaBreached,
    V.CHECKPOINT_OUTCOME_RECEIVED: OutcomeReceived,
    V.DECISION_RECORDED: DecisionRecorded,
    V.RECEIPT_REDEEMED: ReceiptRedeemed,
    V.WEBHOOK_DELIVERED: Delivery,
    V.WEBHOOK_FAILED: Delivery,
    V.WEBHOOK_RESENT: Delivery,
    V.NOTIFICATION_FAILED: NotificationFailed,
    V.NOTIFICATION_RESENT: NotificationResent,
    V.NOTIFICATION_CHANNEL_CREATED: Values,
    V.NOTIFICATION_CHANNEL_UPDATED: ChannelUpdated,
    V.NOTIFICATION_CHANNEL_DELETED: Snapshot,
    V.USER_AWAY: UserAway,
    V.USER_BACK: Empty,
    V.USER_CHAT_LINKED: ChatLinked,
    V.USER_CHAT_UNLINKED: ChatLinked,
    V.AGENT_CREATED: AgentCreated,
    V.AGENT_UPDATED: Changes,
    V.AGENT_DELETED: Snapshot,
    V.AGENT_KEY_CREATED: AgentKeyCreated,
    V.AGENT_KEY_REVOKED: Prefix,
    V.AGENT_WEBHOOK_SECRET_ROTATED: Empty,
    V.USER_CREATED: Values,
    V.USER_UPDATED: Changes,
    V.USER_DELETED: Snapshot,
    V.USER_TOKEN_CREATED: TokenCreated,
    V.USER_TOKEN_REVOKED: Prefix,
    V.GROUP_CREATED: Values,
    V.GROUP_UPDATED: Changes,
    V.GROUP_DELETED: Snapshot,
    V.POLICY_CREATED: PolicyValues,
    V.POLICY_UPDATED: PolicyUpdated,
    V.POLICY_DELETED: Values,
    V.POLICY_PUBLISHED: PolicyMoved,
    V.POLICY_ROLLED_BACK: PolicyMoved,
    V.POLICY_REVOKED: PolicyRevoked,
    V.POLICY_PROPOSED: PolicyValues,
    V.POLICY_REPLAYED: PolicyReplayed,
    V.DECISION_AUTOMATIC: DecisionAutomatic,
    V.AGENT_HALTED: AgentHalted,
    V.AGENT_RESUMED: AgentResumed,
    V.DRILL_SCHEDULED: DrillScheduled,
    V.DRILL_RELEASED: DrillReleased,
    V.DRILL_FINISHED: DrillFinished,
    V.DRILL_WITHDRAWN: Empty,
    V.EXPORT_CREATED: ExportCreated,
    V.AUDIT_VERIFIED: AuditVerified,
}


_DECLARED = {
    verb: frozenset(k.rstrip("_") for k in kind.__required_keys__ | kind.__optional_keys__)
    for verb, kind in PAYLOADS.items()
    if kind is not Snapshot
}


def undeclared(verb: str, data: dict[str, Any] | None) -> list[str]:
    """The keys of `data` that `verb`'s payload type does not declare (none for a Snapshot)."""
    if verb not in _DECLARED:
        return []
    return sorted(set(data or {}) - _DECLARED[verb])
