"""A minimal hosted agent for the resume benchmark: one call that needs approval, a no-op
effect, done. Importable by the benchmark's qcluster subprocess."""

from __future__ import annotations

from agents.runtime import HostedAgent, Plan, PlanView, tool


@tool(requires_approval=True, risk="low")
def noop(n: int) -> dict:
    """Do nothing, after approval.

    Args:
        n: a number to echo
    """
    return {"n": n}


class BenchAgent(HostedAgent):
    name = "Benchmark agent"
    tools = [noop]

    def script(self, view: PlanView) -> Plan:
        if not view.results:
            return Plan.call("noop", n=view.input.get("n", 0))
        return Plan.finish("ok")


def stamp() -> float:
    """The baseline task: returns when it started (broker + worker latency, nothing of ours)."""
    import time

    return time.time()
