"""How approvals announces outcomes without importing agents.

`checkpoint_resolved` is sent inside the resolving transaction, after the status change and
its audit event. Receivers may write rows in that same transaction (an outbox) and schedule
follow-ups with `transaction.on_commit`; they must not do slow work inline.
"""

from django.dispatch import Signal

# kwargs: checkpoint (the resolved Checkpoint, fresh from the database)
checkpoint_resolved = Signal()
