"""Hosted agent runtime. The loop itself arrives with the hosted-agents work; until then a
hosted run that is resumed stays `running` for its runtime to pick up."""

from __future__ import annotations


def continue_run(run_id) -> None:
    return None
