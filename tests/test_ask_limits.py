"""`agents.services.ask` is where every edge's request arrives (the REST API, HumanLayer, MCP,
the hosted runtime, drills): it refuses what is beyond the limits whoever calls it, and
creates nothing."""

from __future__ import annotations

import pytest

from agents.models import Run
from agents.services import Ask, ask
from agents.transitions import run_start
from approvals.artifacts import ArtifactInput
from approvals.models import Checkpoint
from audit.events import Actor
from core.exceptions import InvalidInput

pytestmark = pytest.mark.django_db


def deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"title": "Deploy\r\nBcc: x"}, "title"),
        ({"action": {"tool": "rm\x1b[2J", "args": {}}}, "action.tool"),
        ({"options": [{"value": "a", "label": "A\nB"}]}, "options[0].label"),
        ({"reject_options": [{"value": "r\u2029"}]}, "reject_options[0].value"),
        ({"artifacts": [ArtifactInput(name="a\nb", kind="log", content="x")]}, "artifacts[0].name"),
        ({"action": {"tool": "t", "args": deep(32)}}, "action"),
        ({"context": {"k": "\x00"}}, "context"),
        ({"summary": "x" * 3 * 1024 * 1024}, "non_field_errors"),
    ],
    ids=["title", "tool", "option-label", "reject-option", "artifact-name", "depth", "nul",
         "size"],
)  # fmt: skip
def test_it_refuses_what_is_beyond_the_limits_and_creates_nothing(agent, fields, field):
    run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent))
    fields = {"title": "Deploy", "action": {"tool": "deploy", "args": {}}, **fields}
    with pytest.raises(InvalidInput) as refused:
        ask(run, [Ask(**fields)], actor=Actor.for_agent(agent))
    assert refused.value.field == field
    assert not Checkpoint.objects.exists()
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING


def test_it_takes_a_request_at_the_limits(agent, settings):
    run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent))
    # {"action": {"args": ...}} in a request body: the body's 32 levels.
    args = deep(settings.HITL_API_MAX_JSON_DEPTH - 2)
    (cp,) = ask(
        run, [Ask(title="Deploy", action={"tool": "t", "args": args})], actor=Actor.system()
    )
    assert cp.action["args"] == args
