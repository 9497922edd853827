"""What the integrations need from every checkpoint: the client's own id (`external_id`),
`allowed_outcomes`, `reject_options` and option-plus-text answers, `action.args_schema`, and
`context.source` — through the API, and on the review page with the same rules."""

from __future__ import annotations

import json

import pytest

from approvals.models import Checkpoint, Decision
from audit.models import AuditEvent
from tests.receivers import HttpReceiver

SCHEMA = {
    "type": "object",
    "properties": {
        "to": {"type": "string", "description": "recipient"},
        "priority": {"type": "integer", "minimum": 1},
        "dry_run": {"type": "boolean"},
    },
    "required": ["to"],
    "additionalProperties": False,
}


def test_it_returns_the_same_checkpoint_for_a_repeated_external_id(api, run_id):
    body = {
        "run": run_id,
        "title": "Send mail",
        "action": {"tool": "send_email", "args": {"to": "a@b.c"}},
        "external_id": "call-Ab3",
    }
    first = api.post("checkpoints/", body)
    again = api.post("checkpoints/", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["external_id"] == "call-Ab3"
    assert Checkpoint.objects.filter(external_id="call-Ab3").count() == 1
    assert AuditEvent.objects.filter(verb="checkpoint.requested").count() == 1

    other = api.post("checkpoints/", {**body, "title": "Send another mail"})
    assert other.status_code == 409
    assert other.json()["winner"] == first.json()["id"]

    found = api.get("checkpoints/", external_id="call-Ab3").json()["results"]
    assert [c["id"] for c in found] == [first.json()["id"]]
    assert api.get("checkpoints/", external_id="nope").json()["results"] == []


def test_external_ids_are_per_agent(api, other_api, run_id):
    other_run = other_api.post("runs/", {"task": "t"}).json()["id"]
    body = {"title": "x", "action": {"tool": "t", "args": {}}, "external_id": "same"}
    assert api.post("checkpoints/", {**body, "run": run_id}).status_code == 201
    assert other_api.post("checkpoints/", {**body, "run": other_run}).status_code == 201
    assert other_api.get("checkpoints/", external_id="same").json()["results"][0]["run"] == (
        other_run
    )


def test_it_refuses_outcomes_the_checkpoint_does_not_allow(ask, reviewer_api):
    cp = ask(allowed_outcomes=["reject", "approve"])
    assert cp["allowed_outcomes"] == ["approve", "reject"]
    refused = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "modify", "action": {"args": {"x": 1}}}
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "outcome_not_allowed"
    assert "outcome" in refused.json()["errors"]
    assert not Decision.objects.exists()
    assert Checkpoint.objects.get(pk=cp["id"]).status == "pending"


def test_it_validates_allowed_outcomes_on_create(api, run_id):
    base = {"run": run_id, "title": "t", "action": {"tool": "t", "args": {}}}
    bad = api.post("checkpoints/", {**base, "allowed_outcomes": ["reject"]})
    assert bad.status_code == 400 and "allowed_outcomes" in bad.json()["errors"]
    question = api.post(
        "checkpoints/",
        {"run": run_id, "title": "q?", "kind": "question", "allowed_outcomes": ["modify"]},
    )
    assert question.status_code == 400 and "allowed_outcomes" in question.json()["errors"]
    assert not Checkpoint.objects.exists()


def test_an_approval_may_allow_an_answer_in_place_of_running(ask, reviewer_api):
    cp = ask(allowed_outcomes=["approve", "reject", "answer"])
    result = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/",
        {"outcome": "answer", "answer": "use the staging table instead"},
    ).json()["checkpoint"]
    assert result["status"] == "answered"
    assert result["decision"]["answer"] == "use the staging table instead"


def test_a_rejection_can_pick_a_named_reason(ask, reviewer_api):
    options = [
        {"value": "too_risky", "label": "Too risky", "prompt_fill": "too risky because "},
        {"value": "wrong", "label": "Wrong target"},
    ]
    cp = ask(reject_options=options)
    assert cp["reject_options"] == options
    unknown = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "reject", "answer": "meh"}
    )
    assert unknown.status_code == 400 and "answer" in unknown.json()["errors"]

    decided = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "reject", "answer": "wrong"}
    ).json()["checkpoint"]["decision"]
    assert decided == {**decided, "outcome": "reject", "answer": "wrong", "comment": "Wrong target"}
    event = AuditEvent.objects.get(verb="checkpoint.rejected")
    assert event.data["reason"] == "Wrong target" and event.data["answer"] == "wrong"


def test_a_named_reason_keeps_the_reviewers_own_text(ask, reviewer_api):
    cp = ask(reject_options=[{"value": "too_risky", "label": "Too risky"}])
    decision = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/",
        {"outcome": "reject", "answer": "too_risky", "comment": "it is Friday"},
    ).json()["checkpoint"]["decision"]
    assert (decision["answer"], decision["comment"]) == ("too_risky", "it is Friday")


def test_an_answer_can_be_an_option_plus_text(api, run_id, reviewer_api):
    body = {"run": run_id, "kind": "question", "title": "Tone?", "options": ["formal", "casual"]}
    cp = api.post("checkpoints/", body).json()
    decision = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/",
        {"outcome": "answer", "answer": "formal", "comment": "and shorter, please"},
    ).json()["checkpoint"]["decision"]
    assert (decision["answer"], decision["comment"]) == ("formal", "and shorter, please")


def test_an_edit_must_fit_the_tools_argument_schema(ask, reviewer_api):
    cp = ask(
        action={"tool": "send_email", "args": {"to": "a@b.c", "priority": 3}, "args_schema": SCHEMA}
    )
    bad = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/",
        {"outcome": "modify", "action": {"args": {"to": "a@b.c", "priority": "4999"}}},
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == {
        "action": {"args": {"priority": ["'4999' is not of type 'integer'"]}}
    }
    missing = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "modify", "action": {"args": {}}}
    )
    assert missing.json()["errors"]["action"]["args"] == {
        "non_field_errors": ["'to' is a required property"]
    }
    assert not Decision.objects.exists()

    ok = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/",
        {
            "outcome": "modify",
            "action": {"args": {"to": "x@y.z", "priority": 4999, "dry_run": False}},
        },
    ).json()["checkpoint"]["decision"]
    assert ok["outcome"] == "modify"
    assert ok["action"]["args"] == {"to": "x@y.z", "priority": 4999, "dry_run": False}


def test_it_refuses_a_broken_args_schema(api, run_id):
    bad = api.post(
        "checkpoints/",
        {
            "run": run_id,
            "title": "t",
            "action": {"tool": "t", "args": {}, "args_schema": {"type": "nonsense"}},
        },
    )
    assert bad.status_code == 400
    assert "args_schema" in bad.json()["errors"]["action"]


@pytest.fixture(scope="module")
def receiver():
    """An HTTP server the schemas point at: nothing may ever fetch from it."""
    r = HttpReceiver()
    yield r
    r.stop()


def _create(api, run_id, schema):
    return api.post(
        "checkpoints/",
        {
            "run": run_id,
            "title": "t",
            "action": {"tool": "t", "args": {"a": "x"}, "args_schema": schema},
        },
    )


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": {"a": {"$ref": "REMOTE"}}},
        {"properties": {"a": {"$dynamicRef": "REMOTE"}}},
        {"$defs": {"b": {"$ref": "other.json#/x"}}},
        {"properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"properties": {"a": {"$ref": "#no-such-anchor"}}},
        {"$schema": ["not", "a", "string"]},
    ],
)
def test_it_refuses_an_args_schema_that_is_not_self_contained(api, run_id, receiver, schema):
    schema = json.loads(json.dumps(schema).replace("REMOTE", f"{receiver.base}/x.json"))
    bad = _create(api, run_id, schema)
    assert bad.status_code == 400
    assert "args_schema" in bad.json()["errors"]["action"]
    assert not Checkpoint.objects.exists()
    assert receiver.requests == []


def test_a_ref_inside_data_is_data(ask):
    """`const`/`default` values are data, not subschemas: a `$ref` key in them is no
    reference (the validator does not follow it either)."""
    schema = {"properties": {"a": {"const": {"$ref": "http://127.0.0.1:9/x.json"}}}}
    assert ask(action={"tool": "t", "args": {}, "args_schema": schema})["id"]


LOCAL_REFS = {
    "type": "object",
    "$defs": {
        "days": {"type": "integer", "minimum": 1},
        "paths": {"type": "array", "items": {"$ref": "#path"}},
        "path": {"$anchor": "path", "type": "string"},
    },
    "properties": {"days": {"$ref": "#/$defs/days"}, "paths": {"$ref": "#/$defs/paths"}},
    "required": ["paths"],
}


def test_an_edit_is_checked_against_a_schema_with_local_refs(ask, reviewer_api):
    cp = ask(action={"tool": "t", "args": {"paths": ["/a"]}, "args_schema": LOCAL_REFS})
    bad = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/",
        {"outcome": "modify", "action": {"args": {"paths": [3], "days": "7"}}},
    )
    assert bad.status_code == 400
    assert bad.json()["errors"]["action"]["args"] == {
        "days": ["'7' is not of type 'integer'"],
        "paths.0": ["3 is not of type 'string'"],
    }
    ok = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/",
        {"outcome": "modify", "action": {"args": {"paths": ["/b"], "days": 7}}},
    )
    assert ok.status_code == 200, ok.content
    assert Decision.objects.get().edited_action["args"] == {"paths": ["/b"], "days": 7}


def test_an_unusable_stored_schema_refuses_the_edit_and_fetches_nothing(
    ask, reviewer_api, receiver
):
    """A schema that reached the database before the create-time check (remote refs) or that
    loops for ever: the edit gets a 400 naming the schema, the portal fetches nothing, and the
    call can still be approved or rejected as it is."""
    cp = ask(action={"tool": "t", "args": {"a": "x"}})
    for schema in (
        {"properties": {"a": {"$ref": f"{receiver.base}/x.json"}}},
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "properties": {"a": {"$ref": "#/$defs/a"}}},
    ):
        Checkpoint.objects.filter(pk=cp["id"]).update(
            action={"tool": "t", "args": {"a": "x"}, "args_schema": schema}
        )
        bad = reviewer_api.post(
            f"checkpoints/{cp['id']}/decision/",
            {"outcome": "modify", "action": {"args": {"a": "y"}}},
        )
        assert bad.status_code == 400, bad.content
        assert "argument schema cannot check this edit" in bad.json()["errors"]["action"][0]
    assert receiver.requests == []
    assert not Decision.objects.exists()
    approved = reviewer_api.post(f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"})
    assert approved.status_code == 200
    assert Checkpoint.objects.get(pk=cp["id"]).status == "approved"


def test_it_keeps_a_known_source_and_refuses_an_unknown_one(ask, api, run_id):
    cp = ask(context={"source": "langgraph", "thread_id": "t-1"})
    assert cp["context"] == {"source": "langgraph", "thread_id": "t-1"}
    bad = api.post(
        "checkpoints/",
        {"run": run_id, "title": "t", "action": {"tool": "t"}, "context": {"source": "x"}},
    )
    assert bad.status_code == 400 and "source" in bad.json()["errors"]["context"]
