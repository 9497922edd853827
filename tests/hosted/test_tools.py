"""Tools: schemas from signatures, argument checks, approval rules, the sandbox."""

from __future__ import annotations

from typing import Literal

import pytest

from agents.runtime.rules import more_than, requirement, sql_without_where
from agents.runtime.sandbox import SandboxError, resolve_in_sandbox
from agents.runtime.tools import ToolContext, ToolError, tool


@tool(risk="low")
def resize(
    ctx: ToolContext,
    name: str,
    size: Literal["s", "m", "l"] = "m",
    tags: list[str] | None = None,
    ratio: float = 1.0,
    force: bool = False,
) -> dict:
    """Resize a thing.

    Args:
        name: which thing
        size: the new size
    """
    return {"name": name, "size": size, "ctx": ctx.idempotency_key}


def test_it_derives_the_schema_and_injects_the_context():
    params = resize.parameters
    assert params["required"] == ["name"]
    assert params["properties"]["size"] == {
        "enum": ["s", "m", "l"],
        "description": "the new size",
        "default": "m",
    }
    assert params["properties"]["tags"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert params["properties"]["ratio"] == {"type": "number", "default": 1.0}
    assert "ctx" not in params["properties"]
    ctx = ToolContext(run=None, agent=None, config={}, idempotency_key="k")
    assert resize.call({"name": "x"}, ctx) == {"name": "x", "size": "m", "ctx": "k"}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({}, "missing argument 'name'"),
        ({"name": "x", "color": "red"}, "unknown argument 'color'"),
        ({"name": 5}, "name: expected string, got int"),
        ({"name": "x", "size": "xl"}, "size: must be one of"),
        ({"name": "x", "tags": ["a", 1]}, "tags[1]: expected string, got int"),
        ({"name": "x", "force": 1}, "force: expected boolean, got int"),
        ({"name": "x", "ratio": True}, "ratio: expected number, got bool"),
        ("not an object", "arguments must be an object"),
    ],
)
def test_it_refuses_arguments_that_do_not_fit(args, error):
    with pytest.raises(ToolError, match=error.replace("[", r"\[").replace("]", r"\]")):
        resize.check_args(args)


def test_it_lets_rules_demand_approval_and_raise_risk():
    @tool
    def sql_run(sql: str) -> None:
        """Run SQL."""

    rules = [sql_without_where(), more_than(2, tool="sql_*", arg="rows", what="rows")]
    assert not requirement(sql_run, {"sql": "UPDATE t SET a = 1 WHERE id = 3"}, rules).needed
    need = requirement(sql_run, {"sql": "delete from t"}, rules)
    assert need.needed and need.risk == "critical"
    assert need.reasons == ["the statement has no WHERE clause: it changes every row"]


def test_it_keeps_paths_inside_the_sandbox(sandbox, tmp_path):
    (sandbox / "logs").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (sandbox / "escape").symlink_to(outside)
    assert resolve_in_sandbox("logs") == sandbox / "logs"
    assert resolve_in_sandbox(str(sandbox / "logs")) == sandbox / "logs"
    for bad in ("../outside", str(outside), "escape", "escape/x.log", "/"):
        with pytest.raises(SandboxError, match="outside the sandbox roots"):
            resolve_in_sandbox(bad, must_exist=False)
    with pytest.raises(SandboxError, match="does not exist"):
        resolve_in_sandbox("missing")
