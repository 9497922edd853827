"""What the agent side announces, without importing who reacts (notifications to an agent's
owner, dashboards). Sent only by `agents.transitions`, inside the transaction of the change;
receivers write rows there and do slow work on commit, like approvals' signals."""

from django.dispatch import Signal

# kwargs: agent (the halted Agent, fresh), by (the User who halted it), reason (str),
# cancelled_runs (list of run ids stopped), cancelled_checkpoints (int).
agent_halted = Signal()

# kwargs: agent (the Agent, running again), by (the User who resumed it).
agent_resumed = Signal()
