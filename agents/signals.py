"""What the agent side announces, without importing who reacts (notifications to an agent's
owner). Sent only by `agents.transitions`, inside the transaction of the change; receivers
write rows there and do slow work on commit, like approvals' signals (`approvals.signals`).
Notifications may import this module and nothing else of agents (pyproject.toml's contract).
"""

from django.dispatch import Signal

# kwargs: agent (the halted agents.Agent, fresh, its owner loaded), by (the User who halted
# it), reason (str), cancelled_runs (list of run ids stopped), cancelled_checkpoints (int).
# Sent once per halt by `agents.transitions.agent_halt` (notifications tell the owner).
agent_halted = Signal()

# kwargs: agent (the Agent, running again), by (the User who resumed it), halted_at (when the
# halt it lifts began), halt_reason (str), note (str). Sent once per resume.
agent_resumed = Signal()
