"""How approvals announces what happens to checkpoints, without importing who reacts.

Every signal is sent by `approvals.transitions`, inside the transaction of the change, after
the status change and its audit event; nothing else sends them. Receivers (the agent side's
resume and webhooks, the API's long-poll wake-up, later notifications and metrics) may write
rows in that same transaction (an outbox) and schedule follow-ups with
`transaction.on_commit`; they must not do slow work inline. If the transaction rolls back,
their rows go with it and their on-commit work never runs.
"""

from django.dispatch import Signal

# kwargs: checkpoint (the new pending Checkpoint). Its current stage's role must now be told.
checkpoint_requested = Signal()

# kwargs: checkpoint (still pending), reason: "stage" (the previous stage's quorum was reached:
# the next stage's role must decide now) or "escalated" (its deadline passed: the escalation
# role must decide, by the new deadline); batch=True when sent by the batched expiry sweep.
checkpoint_routed = Signal()

# kwargs: checkpoint (the resolved Checkpoint, fresh from the database); batch=True when it is
# one of many resolved together (the expiry sweep), which then also sends
# `checkpoints_resolved` once: receivers that can do their work in bulk may skip batch=True.
checkpoint_resolved = Signal()

# kwargs: checkpoints (a list of resolved Checkpoints), sent once per batch, in the same
# transaction, after each of them was announced with checkpoint_resolved(batch=True).
checkpoints_resolved = Signal()

# kwargs: checkpoint (still pending), batch=True when sent by a sweep's batch. Sent once per
# checkpoint, the moment it passes its SLA target undecided. SLA breach detection (the
# transition that sends it) belongs to the oversight work (issue 10); notifications subscribe
# to it to tell managers. Declared here with that name so both sides meet on merge.
checkpoint_sla_breached = Signal()
