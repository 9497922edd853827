"""What the agent side announces, without importing who reacts (notifications to an agent's
owner, dashboards). The signals are defined in `approvals.signals`, a layer notifications may
import (it may not import agents); they are named here too for the agent side's readers.
Sent only by `agents.transitions` and `oversight.drills`, inside the transaction of the change;
receivers write rows there and do slow work on commit, like approvals' signals."""

from approvals.signals import agent_halted, agent_resumed, drill_finished

__all__ = ["agent_halted", "agent_resumed", "drill_finished"]
