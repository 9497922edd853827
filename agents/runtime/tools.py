"""Tools: plain functions a hosted agent may call, described to planners by a JSON schema
derived from the signature and type hints.

    @tool(requires_approval=True, risk="high", validate=_inside_sandbox)
    def delete_old_logs(ctx: ToolContext, path: str, older_than_days: int = 7) -> dict:
        \"\"\"Delete *.log files older than N days.

        Args:
            path: directory to clean, inside a sandbox root
            older_than_days: only files last modified this many days ago or earlier
        \"\"\"

A parameter annotated `ToolContext` is injected and is not part of the schema. Hooks attached
with decorators on the tool refine what a reviewer sees and what runs:
    @delete_old_logs.preview     args -> Preview (title, artifacts, the exact args to approve)
    @delete_old_logs.revalidate  args -> None, or raise StaleAction (the world changed)
    @delete_old_logs.refresh     args -> fresh args for a new checkpoint after StaleAction
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from approvals.artifacts import ArtifactInput
from approvals.models import Risk
from core.canonical import action_sha256


class ToolError(Exception):
    """An expected failure (bad arguments, refused path, nothing to do): reported to the
    planner as the call's result instead of crashing the run."""


class StaleAction(ToolError):
    """The approved action no longer fits the world (a file changed, the patch no longer
    applies, the row count moved): ask again instead of acting on a stale approval."""


@dataclass
class ToolContext:
    """What a tool may know about the call it serves."""

    run: Any
    agent: Any
    config: dict
    idempotency_key: str = ""
    # True when a previous attempt of this exact step was interrupted mid-effect: the tool
    # must finish or detect its own earlier work (same idempotency key) rather than redo it.
    recovering: bool = False

    def sandbox_path(self, value: str, *, must_exist: bool = True) -> Path:
        from agents.runtime.sandbox import resolve_in_sandbox

        return resolve_in_sandbox(value, must_exist=must_exist)


@dataclass
class Preview:
    """What a checkpoint shows: the exact arguments to approve and the evidence for them."""

    title: str
    summary: str = ""
    args: dict | None = None
    artifacts: list[ArtifactInput] = field(default_factory=list)
    risk: str | None = None
    # The tool's own confidence in the proposal, 0..1 (overrides the planner's).
    confidence: float | None = None


# --- JSON schema from type hints ------------------------------------------------------------------

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}


def schema_for(annotation: Any) -> dict:
    """JSON schema of one annotation (the subset planners and reviewers need)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return {}
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        schema = (
            schema_for(inner[0]) if len(inner) == 1 else {"anyOf": [schema_for(a) for a in inner]}
        )
        if type(None) in args and "type" in schema:
            schema = {**schema, "type": [schema["type"], "null"]}
        return schema
    if annotation in (list, tuple) or origin in (list, tuple):
        return {"type": "array", **({"items": schema_for(args[0])} if args else {})}
    if annotation is dict or origin is dict:
        return {"type": "object"}
    raise TypeError(f"unsupported tool parameter type {annotation!r}")


def _param_docs(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and `Args:` entries."""
    description, params, current = [], {}, None
    in_args = False
    for line in inspect.cleandoc(doc or "").splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            match = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if match:
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif line.startswith("  ") and current:
                params[current] += " " + line.strip()
            elif line.strip():
                in_args = False
                description.append(line)
        else:
            description.append(line)
    return " ".join(x.strip() for x in description if x.strip()), params


# --- argument checking ---------------------------------------------------------------------------

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _check(value: Any, schema: dict, where: str) -> list[str]:
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: must be one of {schema['enum']}"]
    if "anyOf" in schema:
        if all(_check(value, s, where) for s in schema["anyOf"]):
            errors.append(f"{where}: does not match any allowed type")
        return errors
    expected = schema.get("type")
    if expected:
        names = expected if isinstance(expected, list) else [expected]
        ok = any(
            isinstance(value, _JSON_TYPES[n])
            and not (n in ("integer", "number") and isinstance(value, bool))
            for n in names
        )
        if not ok:
            return [f"{where}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += _check(item, schema["items"], f"{where}[{i}]")
    return errors


# --- the Tool -------------------------------------------------------------------------------------


@dataclass
class Tool:
    func: Callable[..., Any]
    name: str
    description: str
    parameters: dict
    requires_approval: bool = False
    risk: str = Risk.MEDIUM
    validate_fn: Callable[..., None] | None = None
    preview_fn: Callable[..., Preview] | None = None
    revalidate_fn: Callable[..., None] | None = None
    refresh_fn: Callable[..., dict] | None = None
    ctx_param: str | None = None

    # Hooks, used as decorators: @my_tool.preview
    def preview(self, fn: Callable[..., Preview]) -> Callable[..., Preview]:
        self.preview_fn = fn
        return fn

    def revalidate(self, fn: Callable[..., None]) -> Callable[..., None]:
        self.revalidate_fn = fn
        return fn

    def refresh(self, fn: Callable[..., dict]) -> Callable[..., dict]:
        self.refresh_fn = fn
        return fn

    def spec(self) -> dict:
        """The OpenAI-style function description planners receive."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def check_args(self, args: Any) -> dict:
        """Schema check of arguments from a planner or a reviewer's edit. Raises ToolError."""
        if not isinstance(args, dict):
            raise ToolError(f"{self.name}: arguments must be an object, got {type(args).__name__}")
        props = self.parameters["properties"]
        errors = [f"unknown argument {k!r}" for k in args if k not in props]
        errors += [f"missing argument {k!r}" for k in self.parameters["required"] if k not in args]
        for key, value in args.items():
            if key in props:
                errors += _check(value, props[key], key)
        if errors:
            raise ToolError(f"{self.name}: " + "; ".join(errors))
        return args

    def validate(self, args: dict, ctx: ToolContext) -> dict:
        """Schema + the tool's own static checks (sandbox, statement kind, ...)."""
        self.check_args(args)
        if self.validate_fn is not None:
            self.validate_fn(args, ctx)
        return args

    def make_preview(self, args: dict, ctx: ToolContext) -> Preview:
        if self.preview_fn is not None:
            preview = self.preview_fn(args, ctx)
            if preview.args is not None:
                self.check_args(preview.args)
            return preview
        return Preview(title=f"{self.name}({_short(args)})", args=args)

    def check_current(self, args: dict, ctx: ToolContext) -> None:
        if self.revalidate_fn is not None:
            self.revalidate_fn(args, ctx)

    def call(self, args: dict, ctx: ToolContext) -> Any:
        kwargs = dict(args)
        if self.ctx_param:
            kwargs[self.ctx_param] = ctx
        return self.func(**kwargs)

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)


def _short(args: dict, limit: int = 120) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    requires_approval: bool = False,
    risk: str = Risk.MEDIUM,
    validate: Callable[..., None] | None = None,
    description: str | None = None,
):
    """Make a plain function a Tool; its schema comes from its signature and docstring."""

    def wrap(fn: Callable[..., Any]) -> Tool:
        if risk not in Risk.values:
            raise ValueError(f"risk must be one of {Risk.values}")
        hints = typing.get_type_hints(fn)
        doc, param_docs = _param_docs(fn.__doc__ or "")
        properties: dict[str, dict] = {}
        required: list[str] = []
        ctx_param = None
        for pname, param in inspect.signature(fn).parameters.items():
            hint = hints.get(pname, Any)
            if hint is ToolContext:
                ctx_param = pname
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {fn.__name__}: *args/**kwargs cannot be described")
            schema = schema_for(hint)
            if pname in param_docs:
                schema["description"] = param_docs[pname]
            if param.default is param.empty:
                required.append(pname)
            elif param.default is not None:
                schema["default"] = param.default
            properties[pname] = schema
        return Tool(
            func=fn,
            name=name or fn.__name__,
            description=description or doc or fn.__name__.replace("_", " "),
            parameters={
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
            requires_approval=requires_approval,
            risk=risk,
            validate_fn=validate,
            ctx_param=ctx_param,
        )

    return wrap(func) if func is not None else wrap


def call_sha256(tool_name: str, args: dict) -> str:
    return action_sha256({"tool": tool_name, "args": args})
