"""How approvals announces what happens to checkpoints, without importing who reacts.

Every checkpoint signal is sent by `approvals.transitions`, inside the transaction of the
change, after the status change and its audit event; nothing else sends them. One more is
defined here for a sender and a receiver that may not import each other: `drill_finished`,
sent by `oversight.drills`, heard by notifications (the agent side's announcements are in
`agents.signals`). Receivers (the agent side's
resume and webhooks, the API's long-poll wake-up, notifications, the API's metrics) may write
rows in that same transaction (an outbox) and schedule follow-ups with
`transaction.on_commit`; they must not do slow work inline. If the transaction rolls back,
their rows go with it and their on-commit work never runs.
"""

from django.dispatch import Signal

# kwargs: checkpoint (the new pending Checkpoint). Its current stage's role must now be told.
# Not sent for a checkpoint that a policy decides automatically (`checkpoint_auto_decide`):
# no person needs to hear of it; it is announced by checkpoint_resolved alone.
checkpoint_requested = Signal()

# kwargs: checkpoint (still pending), reason: "stage" (the previous stage's quorum was reached:
# the next stage's role must decide now) or "escalated" (its deadline passed: the escalation
# role must decide, by the new deadline); batch=True when sent by the batched expiry sweep.
checkpoint_routed = Signal()

# Drills: a checkpoint with `drill_id` set is a manager's drill. Reviewers are told of it as
# of any other request (requested, routed, SLA breached), but it is never announced as
# resolved: `drill_resolved` is sent instead, so that a receiver acting for the agent
# (resume, webhooks, long-poll) or telling people outside the review (the requester, the
# agent's owner) never hears of one, whether or not it remembers drills exist.

# kwargs: checkpoint (the resolved Checkpoint, fresh from the database; never a drill);
# batch=True when it is one of many resolved together (the expiry sweep), which then also
# sends `checkpoints_resolved` once: receivers that can do their work in bulk may skip
# batch=True.
checkpoint_resolved = Signal()

# kwargs: checkpoint (a resolved drill, fresh), batch=True from the expiry sweep. Sent instead
# of checkpoint_resolved / checkpoints_resolved for drills (`oversight.drills` records the
# result and tells the managers).
drill_resolved = Signal()

# kwargs: checkpoints (a list of resolved Checkpoints), sent once per batch, in the same
# transaction, after each of them was announced with checkpoint_resolved(batch=True).
checkpoints_resolved = Signal()

# kwargs: checkpoint (still pending; `sla_breached_at` just set), batch=True when sent by the
# sweep's batch. Sent once per checkpoint, the moment it passes its SLA target undecided (the
# notifications issue tells managers). A drill (`checkpoint.drill_id`) is announced too:
# receivers that reach outside the portal (agents, their owners) must skip drills.
checkpoint_sla_breached = Signal()

# --- sent by `oversight.drills` (defined here: notifications, its sibling, receives it) -----

# kwargs: drill (the finished oversight.models.Drill, fresh: its outcome set), checkpoint (the
# drill's resolved Checkpoint), votes (list of [reviewer username, outcome, stage], oldest
# first). Sent by `oversight.drills` once per drill, in the transaction that resolved it
# (notifications tell the managers). Only managers may hear of a drill.
drill_finished = Signal()
