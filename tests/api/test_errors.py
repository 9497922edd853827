"""Every error row of the issue: one problem format, field messages, no 500, nothing lost."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from agents.models import AgentKey, Run
from agents.services import AGENT_KEYS
from approvals.models import Checkpoint
from audit.events import Actor

pytestmark = pytest.mark.django_db


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["code"]
    return body


def _cp_body(run_id, **over):
    return {"run": run_id, "title": "t", "action": {"tool": "x", "args": {}}, **over}


def test_it_answers_malformed_json_with_400(api, run_id):
    body = _problem(api.post("checkpoints/", raw=b'{"run": '), 400)
    assert "Malformed JSON" in body["detail"]


@pytest.mark.parametrize(
    "raw,needle",
    [
        (b'{"title": "\xff\xfe"}', "UTF-8"),
        (b'{"title": NaN}', "NaN"),
        (b'{"title": 1e999}', "out of range"),
        (b'{"title": "a\\u0000b"}', "NUL"),
        (b'{"title": "\\ud800"}', "surrogate"),
    ],
)
def test_it_refuses_bodies_a_database_would_choke_on(api, raw, needle):
    assert needle in _problem(api.post("checkpoints/", raw=raw), 400)["detail"]


def test_it_refuses_too_deep_json(api, run_id):
    deep = {"args": {}}
    node = deep["args"]
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    body = _problem(api.post("checkpoints/", _cp_body(run_id, action={"tool": "x", **deep})), 400)
    assert "deeper" in body["detail"]
    very_deep = b"[" * 100_000 + b"]" * 100_000
    _problem(api.post("checkpoints/", raw=very_deep), 400)
    assert not Checkpoint.objects.exists()


@override_settings(HITL_API_MAX_BODY_BYTES=2048)
def test_it_refuses_oversize_bodies_with_413(api, run_id):
    body = _problem(api.post("checkpoints/", _cp_body(run_id, summary="x" * 5000)), 413)
    assert body["code"] == "payload_too_large"
    assert not Checkpoint.objects.exists()


@pytest.mark.parametrize(
    "field,value",
    [
        ("risk", "apocalyptic"),
        ("kind", "vote"),
        ("expires_in", "soon"),
        ("expires_in", 5),
        ("title", ""),
        ("title", "x" * 301),
        ("action", "rm -rf /"),
        ("action", {"args": {}}),
        ("artifacts", [{"name": "a", "kind": "diff"}]),
        ("artifacts", [{"name": "a", "kind": "video", "content": "x"}]),
        ("artifacts", [{"name": "a", "ref": "artifact://00000000-0000-0000-0000-000000000000"}]),
        ("options", [123, None]),
        ("context", {"reasoning": "not a list"}),
        ("run", "not-a-uuid"),
    ],
)
def test_it_names_the_bad_field(api, run_id, field, value):
    body = _problem(api.post("checkpoints/", _cp_body(run_id, **{field: value})), 400)
    assert field in body["errors"], body
    assert Run.objects.get(pk=run_id).status == "running"
    assert not Checkpoint.objects.exists()


def test_it_requires_an_action_for_approvals(api, run_id):
    body = _problem(api.post("checkpoints/", {"run": run_id, "title": "t"}), 400)
    assert "action" in body["errors"]


def test_it_refuses_a_body_that_is_not_an_object(api):
    _problem(api.post("checkpoints/", raw=b"[1, 2]"), 400)
    _problem(api.post("runs/", raw=b'"task"'), 400)


def test_it_refuses_other_content_types_with_415(api):
    _problem(api.post("runs/", raw=b"task=x", content_type="text/plain"), 415)


def test_it_requires_authentication(anon, ask):
    body = _problem(anon.get("runs/"), 401)
    assert body["code"] == "not_authenticated"
    response = anon.post("runs/", {"task": "x"})
    _problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Run.objects.filter(task="x").exists()


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer hitl_abc_def", "Bearer", "Basic x"])
def test_it_refuses_bad_tokens_with_401(anon, header):
    anon.client.credentials(HTTP_AUTHORIZATION=header)
    _problem(anon.get("runs/"), 401)


def test_it_refuses_a_revoked_key_with_401(api, agent):
    AGENT_KEYS.revoke(AgentKey.objects.get(agent=agent), Actor.system("test"))
    _problem(api.get("runs/"), 401)
    _problem(api.post("runs/", {"task": "x"}), 401)


def test_it_refuses_an_inactive_agent(api, agent):
    agent.active = False
    agent.save()
    _problem(api.get("runs/"), 401)


def test_it_keeps_humans_and_agents_apart(api, reviewer_api, ask):
    cp = ask()
    _problem(api.get("queue/"), 403)
    _problem(api.post(f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"}), 403)
    _problem(reviewer_api.post(f"checkpoints/{cp['id']}/cancel/"), 403)
    assert Checkpoint.objects.get(pk=cp["id"]).status == "pending"


def test_it_answers_unknown_urls_under_the_api_as_problems(api):
    body = _problem(api.get("/api/v1/nothing-here/"), 404)
    assert body["code"] == "not_found"
    _problem(api.get("/api/v1/checkpoints/not-a-uuid/"), 404)


def test_it_answers_unknown_methods_with_405(api, run_id):
    _problem(api.client.delete(f"/api/v1/runs/{run_id}/"), 405)


@override_settings(HITL_API_THROTTLE_AGENT="3/m")
def test_it_throttles_per_agent_key(api, other_api):
    from django.core.cache import caches

    caches["throttle"].clear()
    for _ in range(3):
        assert api.get("runs/").status_code == 200
    response = api.get("runs/")
    body = _problem(response, 429)
    assert int(response["Retry-After"]) >= 1 and body["retry_after"] >= 1
    assert other_api.get("runs/").status_code == 200  # another key has its own budget
    caches["throttle"].clear()


def test_it_reports_validation_errors_as_json_serializable_problems(api, run_id):
    response = api.post("checkpoints/", _cp_body(run_id, artifacts=[{"name": "a"}] * 2))
    body = _problem(response, 400)
    json.dumps(body)
    assert body["errors"]["artifacts"]["0"]["non_field_errors"]
