"""Conditions are CEL: compiled and type-checked at save, evaluated on nested arguments; an
evaluation error does not match and is logged, never raised."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from approvals.policies.conditions import (
    ConditionError,
    compile_condition,
    request_facts,
    suggest_condition,
)

NOW = dt.datetime(2026, 11, 20, 13, 30, tzinfo=dt.UTC)  # a Friday
EXAMPLE = (
    'tool == "delete_files" && size(args.paths) <= 20 && '
    'args.paths.all(p, p.startsWith("/var/log/"))'
)


def facts(args=None, tool="delete_files", **more):
    return request_facts(
        agent_slug=more.pop("agent", "log-janitor"),
        action={"tool": tool, "args": args if args is not None else {}},
        kind=more.pop("kind", "approval"),
        risk=more.pop("risk", "high"),
        now=more.pop("now", NOW),
        **more,
    )


def test_it_matches_the_issues_example_over_nested_arguments():
    condition = compile_condition(EXAMPLE)
    assert condition.evaluate(facts({"paths": ["/var/log/a.log", "/var/log/b/c.log"]}))
    assert not condition.evaluate(facts({"paths": ["/var/log/a.log", "/etc/passwd"]}))
    assert not condition.evaluate(facts({"paths": [f"/var/log/{i}" for i in range(21)]}))
    assert not condition.evaluate(facts({"paths": ["/var/log/a.log"]}, tool="rm"))


def test_it_reads_deeply_nested_arguments_and_the_other_variables():
    condition = compile_condition(
        'args.db.tables.exists(t, t.name == "orders" && t.rows < 1000) && risk_level >= 2 '
        '&& agent.startsWith("log-") && kind == "approval" && hour == 13 && weekday == 5'
    )
    args = {"db": {"tables": [{"name": "users", "rows": 5}, {"name": "orders", "rows": 10}]}}
    assert condition.evaluate(facts(args))
    assert not condition.evaluate(facts(args, risk="low"))


def test_a_missing_key_does_not_match_and_is_logged(caplog):
    condition = compile_condition("args.paths.size() <= 20")
    with caplog.at_level(logging.INFO, logger="approvals.policies.conditions"):
        assert condition.evaluate(facts({"files": ["a"]}), label="janitor v1") is False
    assert "janitor v1 did not evaluate" in caplog.text
    assert "paths" in caplog.text


def test_has_guards_a_missing_key_and_wrong_types_do_not_match():
    assert not compile_condition("has(args.paths) && size(args.paths) > 0").evaluate(facts({}))
    assert not compile_condition("args.n > 3").evaluate(facts({"n": "many"}))


def test_confidence_is_null_unless_reported_and_artifacts_have_sizes():
    condition = compile_condition(
        "confidence != null && confidence >= 0.9 && artifacts.all(a, a.size < 100) "
        '&& artifacts.exists(a, a.kind == "diff")'
    )
    small = [{"name": "p.diff", "kind": "diff", "size": 10, "content_type": "text/x-diff"}]
    assert condition.evaluate(facts(confidence=0.95, artifacts=small))
    assert not condition.evaluate(facts(confidence=None, artifacts=small))
    assert not condition.evaluate(facts(confidence=0.5, artifacts=small))
    big = [{**small[0], "size": 1000}]
    assert not condition.evaluate(facts(confidence=0.95, artifacts=big))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('tool == "x" &&', "Syntax error"),
        ("toll == 'x'", "undeclared reference to 'toll'"),
        ("tool == 1", "no matching overload"),
        ("size(args)", "must be true or false"),
        ("", "Empty condition"),
        ("true || " * 600 + "true", "at most 4000 characters"),
    ],
)
def test_a_condition_that_does_not_compile_says_why(source, message):
    with pytest.raises(ConditionError, match=message):
        compile_condition(source)


def test_the_suggested_condition_compiles_matches_its_request_and_refuses_dot_dot():
    action = {
        "tool": "delete_files",
        "args": {"paths": ["/var/log/a.log", "/var/log/b.log"], "force": False, "days": 7},
    }
    source = suggest_condition(agent_slug="log-janitor", action=action)
    assert source == (
        'agent == "log-janitor" && tool == "delete_files" && args.days <= 7 '
        "&& args.force == false && size(args.paths) <= 2 "
        '&& args.paths.all(p, p.startsWith("/var/log/") && !p.contains(".."))'
    )
    condition = compile_condition(source)
    assert condition.evaluate(facts(action["args"]))
    climbing = {**action["args"], "paths": ["/var/log/../../etc/passwd"]}
    assert not condition.evaluate(facts(climbing))
