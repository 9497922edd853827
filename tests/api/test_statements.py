"""The SQL statements of one create-checkpoint and one decision through the API, and of the
create's notification fan-out (a task after its commit), capped at what `bench/statements.py`
prints on each database (docs/benchmarks.md): a change that adds round trips to the hot paths
fails here and has to update the figures on purpose."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import Checkpoint
from notifications.models import Notice
from notifications.tasks import fan_out

# Committed as in the benchmark, so the on-commit follow-ups (the fan-out task's enqueue on
# the ORM broker; the fan-out's: its sends') count too.
pytestmark = pytest.mark.django_db(transaction=True)

# bench/statements.py: create-checkpoint, its fan-out (task), decision (approve). Issue 20 cut
# the create from 12 and the decision from 24 (SQLite) / 26 (PostgreSQL). The decision's
# count includes the token's last-use stamp (an UPDATE at most once a minute per token) and,
# on PostgreSQL, two NOTIFYs (the sequencer's wake, the long-poll's). The fan-out task sends
# its deliveries too since issue 20 (it was 13 without the send, which cost a task of its own
# per recipient).
CAPS = {"sqlite": (11, 19, 12), "postgresql": (11, 19, 14)}

BODY = {
    "title": "Delete batch",
    "risk": "high",
    "action": {"tool": "delete_files", "args": {"paths": ["/tmp/1.log"]}},
    "context": {"reasoning": ["disk is full"]},
}


def _sql(ctx: CaptureQueriesContext) -> str:
    return "\n".join(q["sql"][:120] for q in ctx.captured_queries)


def test_it_creates_and_decides_within_the_benchmarked_statements(
    api, run_id, reviewer_api, broker, settings
):
    # As deployed (and benchmarked): the sequencer and the task workers run elsewhere.
    settings.HITL_LEDGER_SYNC = False
    create_cap, fan_out_cap, decision_cap = CAPS[connection.vendor]
    for _ in range(3):  # as the benchmark: warm (the run waits, the policy cache is filled)
        with CaptureQueriesContext(connection) as create:
            response = api.post("checkpoints/", {"run": run_id, **BODY}, key=str(uuid.uuid4()))
        assert response.status_code == 201, response.content
    cp = response.json()["id"]
    notices = list(Notice.objects.filter(checkpoint_id=cp).values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as fanning:  # the task, as the cluster runs it
        assert fan_out(notices) == "fanned out 1 of 1 notice(s)"
    with CaptureQueriesContext(connection) as decide:
        response = reviewer_api.post(
            f"checkpoints/{cp}/decision/", {"outcome": "approve"}, key=str(uuid.uuid4())
        )
    assert response.status_code == 200, response.content
    assert Checkpoint.objects.get(pk=cp).status == Checkpoint.Status.APPROVED
    assert len(create.captured_queries) <= create_cap, _sql(create)
    assert len(fanning.captured_queries) <= fan_out_cap, _sql(fanning)
    assert len(decide.captured_queries) <= decision_cap, _sql(decide)
