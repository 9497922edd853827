"""Policy conditions: CEL (Common Expression Language) over a checkpoint request.

CEL is a maintained, sandboxed expression language: no side effects, no I/O, no loops
beyond bounded comprehensions over the request's own data, so every condition terminates.
We use Google's C++ implementation through `cel-expr-python`: it type-checks at compile
time (an unknown variable, `tool == 1` or a condition that is not a boolean is an error
when the policy is saved, not at the next request) and evaluates a compiled expression in
a few microseconds (docs/benchmarks.md, "Policy engine").

The variables a condition sees (`FACTS`):

    agent        string   the agent's slug
    tool         string   the proposed action's tool ("" for questions)
    args         map      the action's arguments, as the agent sent them (nested JSON)
    kind         string   approval | question | review
    risk         string   low | medium | high | critical
    risk_level   int      0 (low) .. 3 (critical), for comparisons
    confidence   double or null   the agent's own confidence, 0..1 (null: not reported)
    title        string
    role_hint    string
    artifacts    list of {name, kind, size, content_type}
    now          timestamp        when the request arrives
    hour         int      0..23 in the portal's TIME_ZONE
    weekday      int      1 (Monday) .. 7 (Sunday) in TIME_ZONE

Evaluation never raises: a condition that errs on a request (a missing key, an index out of
range, a wrong type in the arguments) does not match it, and the error is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings
from django.conf import settings

from approvals.models import RISK_ORDER

log = logging.getLogger(__name__)

MAX_CONDITION_CHARS = 4000

_T = cel.Type
FACTS: dict[str, Any] = {
    "agent": _T.STRING,
    "tool": _T.STRING,
    "args": _T.Map(_T.STRING, _T.DYN),
    "kind": _T.STRING,
    "risk": _T.STRING,
    "risk_level": _T.INT,
    "confidence": _T.DYN,
    "title": _T.STRING,
    "role_hint": _T.STRING,
    "artifacts": _T.List(_T.Map(_T.STRING, _T.DYN)),
    "now": _T.TIMESTAMP,
    "hour": _T.INT,
    "weekday": _T.INT,
}

_env = None


def _environment():
    global _env
    if _env is None:
        _env = cel.NewEnv(variables=FACTS, extensions=[ext_strings.ExtStrings()])
    return _env


class ConditionError(ValueError):
    """The condition does not compile (syntax, an unknown variable, a type error, not a
    boolean). The message is CEL's, with the position marked."""


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any  # cel Expression

    def evaluate(self, facts: Facts, *, label: str = "") -> bool:
        """True if the condition holds for the request. An error (a missing key, a type
        mismatch in the agent's arguments) is logged and does not match."""
        try:
            result = self.program.eval(facts.activation())
        except Exception as exc:  # the binding's own failure: never a 500
            log.warning("condition %s raised on a request: %s", label or self.source, exc)
            return False
        if result.type() == _T.BOOL:
            return bool(result.value())
        log.info(
            "condition %s did not evaluate on a request (%s): no match",
            label or self.source,
            result.value(),
        )
        return False


def compile_condition(source: str) -> Condition:
    """Compile (and type-check) a condition; ConditionError with CEL's message otherwise."""
    source = (source or "").strip()
    if not source:
        raise ConditionError("Empty condition.")
    if len(source) > MAX_CONDITION_CHARS:
        raise ConditionError(f"A condition is at most {MAX_CONDITION_CHARS} characters.")
    try:
        program = _environment().compile(source)
    except Exception as exc:
        raise ConditionError(_clean(str(exc))) from None
    returns = program.return_type()
    if returns != _T.BOOL and returns != _T.DYN:
        raise ConditionError(
            f"A condition must be true or false; this one gives a {returns.name().lower()}."
        )
    return Condition(source, program)


def _clean(message: str) -> str:
    """CEL's message without the status prefix and suffix (INVALID_ARGUMENT: ... [..])."""
    for prefix in ("INVALID_ARGUMENT: ", "ERROR: "):
        message = message.removeprefix(prefix)
    if message.endswith("[INVALID_ARGUMENT]"):
        message = message[: -len("[INVALID_ARGUMENT]")].rstrip()
    return message.replace("<input>:", "line ", 1)


class Facts:
    """One request as CEL variables; the activation is built once and shared by every
    condition evaluated on the request."""

    __slots__ = ("_activation", "values")

    def __init__(self, values: dict[str, Any]):
        self.values = values
        self._activation = None

    def activation(self):
        if self._activation is None:
            self._activation = _environment().Activation(self.values)
        return self._activation


def _zone() -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def request_facts(
    *,
    agent_slug: str,
    action: dict | None,
    kind: str,
    risk: str,
    confidence: float | None = None,
    title: str = "",
    role_hint: str = "",
    artifacts: list[dict] | None = None,
    now: dt.datetime,
) -> Facts:
    """The request a condition is evaluated on. `artifacts`: [{name, kind, size,
    content_type}]."""
    action = action or {}
    args = action.get("args")
    local = now.astimezone(_zone())
    return Facts(
        {
            "agent": agent_slug,
            "tool": str(action.get("tool") or ""),
            "args": args if isinstance(args, dict) else {},
            "kind": kind,
            "risk": risk,
            "risk_level": RISK_ORDER.get(risk, 1),
            "confidence": None if confidence is None else float(confidence),
            "title": title,
            "role_hint": role_hint,
            "artifacts": artifacts or [],
            "now": now,
            "hour": local.hour,
            "weekday": local.isoweekday(),
        }
    )


def _cel_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def suggest_condition(*, agent_slug: str, action: dict | None) -> str:
    """A standing rule's starting point, from one request: the same agent and tool, and for
    each argument what it was: strings equal, numbers at most as large, lists of paths
    under the same directory (without `..`) and no longer. The reviewer edits it before
    proposing."""
    action = action or {}
    parts = [f"agent == {_cel_string(agent_slug)}"]
    if action.get("tool"):
        parts.append(f"tool == {_cel_string(str(action['tool']))}")
    for name, value in sorted((action.get("args") or {}).items()):
        if not isinstance(name, str) or not name.isidentifier():
            continue
        ref = f"args.{name}"
        if isinstance(value, bool):
            parts.append(f"{ref} == {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            parts.append(f"{ref} <= {value}")
        elif isinstance(value, str) and len(value) <= 200:
            parts.append(f"{ref} == {_cel_string(value)}")
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            prefixes = sorted({v.rsplit("/", 1)[0] + "/" for v in value if "/" in v})
            parts.append(f"size({ref}) <= {len(value)}")
            if len(prefixes) == 1:
                # `..` would climb out of the directory a prefix check allows.
                prefix = _cel_string(prefixes[0])
                parts.append(f'{ref}.all(p, p.startsWith({prefix}) && !p.contains(".."))')
    return " && ".join(parts)
