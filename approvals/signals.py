"""How approvals announces outcomes without importing agents.

`checkpoint_resolved` is sent inside the resolving transaction, after the status change and
its audit event. Receivers may write rows in that same transaction (an outbox) and schedule
follow-ups with `transaction.on_commit`; they must not do slow work inline.
"""

from django.dispatch import Signal

# kwargs: checkpoint (the resolved Checkpoint, fresh from the database); batch=True when it is
# one of many resolved together (the expiry sweep), which then also sends
# `checkpoints_resolved` once: receivers that can do their work in bulk may skip batch=True.
checkpoint_resolved = Signal()

# kwargs: checkpoints (a list of resolved Checkpoints), sent once per batch, in the same
# transaction, after each of them was announced with checkpoint_resolved(batch=True).
checkpoints_resolved = Signal()
