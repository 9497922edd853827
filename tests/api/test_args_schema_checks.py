"""Checking an edit against the agent's `args_schema` (approvals/schemas.py): every keyword that
matches a regex runs on RE2, in every dialect, with jsonschema's answers; what one check may
cost is bounded, and a schema the portal cannot use refuses the edit, never the decision.
(tests/api/test_hostile_schemas.py sends the same through the live portal's port.)"""

from __future__ import annotations

import pytest
from jsonschema.validators import validator_for

from approvals.models import Checkpoint, Decision

pytestmark = pytest.mark.django_db

EVIL = "a" * 40 + "!"
CATASTROPHIC = "^(a+)+$"
D4 = "http://json-schema.org/draft-04/schema#"
D7 = "http://json-schema.org/draft-07/schema#"
D2019 = "https://json-schema.org/draft/2019-09/schema"


def modify(reviewer_api, cp: dict, args: dict):
    return reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "modify", "action": {"args": args}}
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("schema", "errors"),
    [
        (
            {"properties": {"label": {"pattern": CATASTROPHIC}}},
            {"label": [f"{EVIL!r} does not match {CATASTROPHIC!r}"]},
        ),
        (
            {"$schema": D4, "properties": {"label": {"pattern": CATASTROPHIC}}},
            {"label": [f"{EVIL!r} does not match {CATASTROPHIC!r}"]},
        ),
        (
            {"propertyNames": {"pattern": CATASTROPHIC}},
            {"non_field_errors": [f"{EVIL!r} does not match {CATASTROPHIC!r}"]},
        ),
        (
            {"patternProperties": {CATASTROPHIC: {"type": "integer"}}, "properties": {}},
            {},  # the key does not match, so nothing applies
        ),
        (
            {"$schema": D7, "patternProperties": {CATASTROPHIC: {}}, "additionalProperties": False},
            {"non_field_errors": [f"{EVIL!r} does not match any of the regexes: {CATASTROPHIC!r}"]},
        ),
        (
            {"patternProperties": {CATASTROPHIC: {}}, "unevaluatedProperties": False},
            {
                "non_field_errors": [
                    f"Unevaluated properties are not allowed ({EVIL!r} was unexpected)"
                ]
            },
        ),
        (
            {
                "$schema": D2019,
                "patternProperties": {CATASTROPHIC: {}},
                "unevaluatedProperties": False,
            },
            {
                "non_field_errors": [
                    f"Unevaluated properties are not allowed ({EVIL!r} was unexpected)"
                ]
            },
        ),
    ],
)
def test_every_keyword_that_matches_a_regex_runs_in_linear_time(ask, reviewer_api, schema, errors):
    """On Python's `re` each of these backtracks 2^40 ways: the test would time out."""
    args = (
        {"label": EVIL} if "properties" in schema and "label" in schema["properties"] else {EVIL: 1}
    )
    cp = ask(action={"tool": "t", "args": args, "args_schema": schema})
    response = modify(reviewer_api, cp, args)
    if errors:
        assert response.status_code == 400, response.content
        assert response.json()["errors"]["action"]["args"] == errors
    else:
        assert response.status_code == 200, response.content
    assert Decision.objects.count() == (0 if errors else 1)


def stock_errors(schema: dict, instance) -> list[tuple[list, str]]:
    validator = validator_for(schema)(schema)
    return sorted(
        (list(map(str, e.absolute_path)), e.message) for e in validator.iter_errors(instance)
    )


def ours(schema: dict, instance) -> list[tuple[list, str]]:
    from approvals.schemas import args_errors  # (imported here: the other tests run on main)

    errors = args_errors(schema, instance)
    return sorted(
        ([] if path == "non_field_errors" else path.split("."), message)
        for path, messages in errors.items()
        for message in messages
    )


ORDINARY = [
    (
        {"patternProperties": {"^x-": {"type": "string"}, "^n": {"minimum": 3}}},
        {"x-a": 1, "n": 1, "o": 2},
    ),
    (
        {"properties": {"a": {}}, "patternProperties": {"^b": {}}, "additionalProperties": False},
        {"a": 1, "bb": 2, "c": 3, "d": 4},
    ),
    ({"properties": {"a": {}}, "additionalProperties": {"type": "string"}}, {"a": 1, "b": 2}),
    (
        {
            "$schema": D7,
            "patternProperties": {"^b": {}},
            "additionalProperties": {"type": "integer"},
        },
        {"bx": "s", "c": "t"},
    ),
    (
        {
            "allOf": [{"properties": {"a": {}}}, {"patternProperties": {"^b": {}}}],
            "unevaluatedProperties": False,
        },
        {"a": 1, "b1": 2, "c": 3},
    ),
    (
        {
            "if": {"required": ["a"]},
            "then": {"properties": {"b": {}}},
            "else": {"properties": {"c": {}}},
            "unevaluatedProperties": {"type": "string"},
        },
        {"a": 1, "b": 2, "c": 3, "d": "x"},
    ),
    (
        {
            "$defs": {"p": {"patternProperties": {"^p": {}}}},
            "$ref": "#/$defs/p",
            "dependentSchemas": {"a": {"properties": {"q": {}}}},
            "unevaluatedProperties": False,
        },
        {"a": 1, "pp": 1, "q": 1, "r": 1},
    ),
    (
        {
            "$schema": D2019,
            "properties": {"a": {}},
            "patternProperties": {"^b": {}},
            "anyOf": [{"properties": {"c": {}}}],
            "unevaluatedProperties": False,
        },
        {"a": 1, "b": 1, "c": 1, "d": 1},
    ),
    ({"items": {"pattern": "^[a-z]+$"}, "uniqueItems": True}, ["ab", "ab", "C"]),
    ({"uniqueItems": True}, [1, 1.0]),
    ({"uniqueItems": True}, [1, True, {"a": [1, 2]}, {"a": [1, 2.0]}]),
    ({"uniqueItems": True}, [0, False, [], {}, "", None, 0.0]),
    (
        {
            "$schema": D4,
            "properties": {"a": {"pattern": "^\\d+$"}},
            "dependencies": {"a": ["b"], "c": {"required": ["d"]}},
        },
        {"a": "12x", "c": 1},
    ),
]


@pytest.mark.parametrize(("schema", "instance"), ORDINARY)
def test_it_answers_as_jsonschema_does_on_ordinary_schemas(schema, instance):
    assert ours(schema, instance) == stock_errors(schema, instance)
    assert ours(schema, instance)  # each case has errors to compare


@pytest.mark.timeout(60)
def test_an_edit_too_costly_to_check_is_refused_and_the_call_can_still_be_decided(
    ask, reviewer_api, settings
):
    settings.HITL_ARGS_SCHEMA_CHECK_BUDGET = 100_000
    fan_out: dict = {"$defs": {"d0": {"type": "integer"}}}
    for i in range(1, 30):  # 2^30 applications of d0 to one value, from a 2 KB schema
        ref = {"$ref": f"#/$defs/d{i - 1}"}
        fan_out["$defs"][f"d{i}"] = {"allOf": [ref, ref]}
    fan_out["properties"] = {"n": {"$ref": "#/$defs/d29"}, "xs": {"items": {"type": "integer"}}}
    cp = ask(action={"tool": "t", "args": {"n": 1}, "args_schema": fan_out})

    for args in ({"n": 2}, {"xs": list(range(10_000))}):
        refused = modify(reviewer_api, cp, args)
        assert refused.status_code == 400, refused.content
        assert "too costly to check" in refused.json()["errors"]["action"][0]
    assert modify(reviewer_api, cp, {"xs": list(range(100))}).status_code == 200
    assert Decision.objects.get().outcome == "modify"


@pytest.mark.timeout(60)
def test_unique_items_is_checked_in_one_pass(ask, reviewer_api):
    """jsonschema compares every pair of objects: 20,000 of them take minutes."""
    schema = {"properties": {"xs": {"uniqueItems": True}}}
    cp = ask(action={"tool": "t", "args": {"xs": []}, "args_schema": schema})
    distinct = [{"i": i} for i in range(20_000)]
    refused = modify(reviewer_api, cp, {"xs": [*distinct, {"i": 7.0}]})
    assert refused.status_code == 400
    assert "has non-unique elements" in refused.json()["errors"]["action"]["args"]["xs"][0]
    assert modify(reviewer_api, cp, {"xs": distinct}).status_code == 200


def test_a_stored_pattern_re2_cannot_run_refuses_the_edit_not_the_call(ask, reviewer_api):
    """A schema that reached the database before the create-time check."""
    cp = ask(action={"tool": "t", "args": {"a": "xx"}})
    schema = {"properties": {"a": {"pattern": r"^(x)\1$"}}}
    Checkpoint.objects.filter(pk=cp["id"]).update(
        action={"tool": "t", "args": {"a": "xx"}, "args_schema": schema}
    )
    refused = modify(reviewer_api, cp, {"a": "yy"})
    assert refused.status_code == 400
    assert "argument schema cannot check this edit" in refused.json()["errors"]["action"][0]
    approved = reviewer_api.post(f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"})
    assert approved.status_code == 200
    assert Checkpoint.objects.get(pk=cp["id"]).status == "approved"


def test_a_draft_04_schema_with_property_dependencies_is_taken(ask, reviewer_api):
    schema = {"$schema": D4, "dependencies": {"a": {"required": ["b"]}, "c": ["a"]}}
    cp = ask(action={"tool": "t", "args": {"a": 1, "b": 2}, "args_schema": schema})
    refused = modify(reviewer_api, cp, {"a": 1})
    assert refused.json()["errors"]["action"]["args"] == {
        "non_field_errors": ["'b' is a required property"]
    }


@pytest.mark.django_db(transaction=True)
def test_an_edit_is_checked_before_the_checkpoint_is_locked(ask, reviewer_api, monkeypatch):
    """The check can take up to a second: not inside the transaction that holds the row (on
    SQLite, the database) locked."""
    from django.db import connection

    from approvals import rules

    seen = []
    real = rules.args_errors

    def spy(schema, args):
        seen.append(connection.in_atomic_block)
        return real(schema, args)

    monkeypatch.setattr(rules, "args_errors", spy)
    schema = {"properties": {"n": {"type": "integer"}}}
    cp = ask(action={"tool": "t", "args": {"n": 1}, "args_schema": schema})
    assert modify(reviewer_api, cp, {"n": "x"}).status_code == 400
    assert modify(reviewer_api, cp, {"n": 2}).status_code == 200
    assert seen == [False, False]
    assert Decision.objects.get().edited_action["args"] == {"n": 2}


def test_an_error_quotes_a_huge_value_in_bounded_words(ask, reviewer_api):
    schema = {"properties": {"label": {"type": "string", "maxLength": 10}}}
    cp = ask(action={"tool": "t", "args": {"label": "ok"}, "args_schema": schema})
    response = modify(reviewer_api, cp, {"label": "x" * 1_000_000})
    assert response.status_code == 400
    (message,) = response.json()["errors"]["action"]["args"]["label"]
    assert len(message) < 400 and message.endswith("is too long")
    assert len(response.content) < 4000
    assert not Decision.objects.exists()
