"""The OpenAPI schema is valid, and the API keeps to it: a bounded schemathesis run with
agent auth over every operation finds no 5xx, no undocumented status code or content type and
no response that violates its schema."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
)

from hitlportal.wsgi import application


def test_it_generates_a_valid_schema_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for operation in (
        "checkpoints_create",
        "checkpoints_wait",
        "checkpoints_decide",
        "runs_create",
        "artifacts_upload",
        "queue_list",
        "health",
    ):
        assert f"operationId: {operation}" in text
    assert "Idempotency-Key" in text and "application/problem+json" in text


schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def seeded(db, agent, agent_key, settings):
    """A run and a checkpoint to be found, so not every generated id is a 404."""
    from agents.transitions import run_start
    from audit.events import Actor

    settings.HITL_API_THROTTLE_AGENT = ""
    run_start(agent=agent, task="seed", actor=Actor.for_agent(agent))
    # Requests go through the WSGI handler in-process; like Django's test client, keep it
    # from closing the test's database connection at the end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield agent_key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_schema(case, seeded):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {seeded}"}
    # Every check but two. "Schema-valid data is accepted": some valid-looking requests are
    # refused for reasons no JSON Schema states (a run id of another agent, an Idempotency-Key
    # reused with another body, NUL characters PostgreSQL cannot store); those get a 4xx by
    # design. "Invalid auth is refused": the token is set here, not through the schema's auth
    # config, so the check cannot take it away; missing, malformed and revoked tokens are
    # tested in test_errors.py.
    excluded = [positive_data_acceptance, ignored_auth]
    if case.media_type == "multipart/form-data":
        # A form field is text whatever it looks like: a "number" mutated into a string field
        # arrives as the string "2.48e-291", which is a valid name, so "invalid data is
        # rejected" cannot hold for multipart type mutations.
        excluded.append(negative_data_rejection)
    case.call_and_validate(excluded_checks=excluded)


def test_the_schema_states_the_constraints_the_api_enforces(tmp_path, api, run_id, ask, reviewer):
    """What schemathesis found valid by the schema yet refused: the schema now says it, and
    the API accepts what the schema allows."""
    import yaml

    from approvals.services import user_token_create
    from tests.api.conftest import Api

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(out))
    doc = yaml.safe_load(out.read_text())
    params = {
        p["name"]: p["schema"]
        for p in doc["paths"]["/api/v1/checkpoints/{id}/wait"]["get"]["parameters"]
        if p["in"] == "query"
    }
    assert (params["timeout"]["minimum"], params["timeout"]["maximum"]) == (0, 60)
    listing = doc["paths"]["/api/v1/checkpoints/"]["get"]["parameters"]
    assert next(p for p in listing if p["name"] == "run")["schema"]["format"] == "uuid"
    schemas = doc["components"]["schemas"]
    assert schemas["DecisionInRequest"]["properties"]["action"]["nullable"] is True
    assert schemas["ArtifactInRequest"]["properties"]["name"]["pattern"]
    assert {"required": ["action"]} in schemas["CheckpointCreateRequest"]["anyOf"]

    # ...and the behaviour agrees
    cp = ask()
    token = user_token_create(reviewer, scope="decide")
    body = {"outcome": "approve", "action": None}
    assert Api(token).post(f"checkpoints/{cp['id']}/decision/", body).status_code == 200
    bad_name = {"run": run_id, "title": "t", "action": {"tool": "t"}}
    bad_name["artifacts"] = [{"name": "a\x07b", "content": "x"}]
    refused = api.post("checkpoints/", bad_name)
    assert refused.status_code == 400 and "artifacts" in refused.json()["errors"]
    question = api.post("checkpoints/", {"run": run_id, "title": "q?", "kind": "question"})
    assert question.status_code == 201
    approval = api.post("checkpoints/", {"run": run_id, "title": "t"})
    assert approval.status_code == 400
