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

Cost: a condition is bounded before it runs (`approvals.policies.cel_cost`: time and memory as a
function of the request's argument sizes). Saving one whose bound on the largest request the
API admits exceeds HITL_CONDITION_MAX_COST or HITL_CONDITION_MAX_MEMORY is refused
(`check_cost`, a field error on `condition`). One stored before this check keeps routing,
under the same limits per request: on a request where its bound (with that request's sizes)
exceeds them, it is not evaluated and does not match, and the request's routing notes say so.
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
from approvals.policies import cel_cost

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


def input_limits() -> cel_cost.InputLimits:
    """The largest request the API admits, as the cost bound counts sizes (JSON bytes): the
    arguments are part of a body of at most HITL_API_MAX_BODY_BYTES; the other variables
    are bounded by their fields (4 bytes a character)."""
    return cel_cost.InputLimits(
        args=settings.HITL_API_MAX_BODY_BYTES,
        scalars={
            "agent": 4 * 100 + 2,
            "tool": 4 * 200 + 2,
            "title": 4 * 300 + 2,
            "role_hint": 4 * 150 + 2,
            "kind": 12,
            "risk": 12,
            # 50 artifacts of {name (255), kind, size, content_type (100)}
            "artifacts": 50 * (4 * 255 + 4 * 100 + 64) + 2,
        },
    )


def _units(value: float) -> str:
    return f"{value:,.0f}" if value < 1e15 else f"{value:.1e}"


@dataclass(frozen=True)
class Cost:
    """A condition's bound (`estimate`, None: it has none) and, if it exceeds the limits on
    the largest request, why (`problem`)."""

    estimate: cel_cost.Estimate | None
    worst_time: float
    worst_memory: float
    problem: str | None

    @property
    def admitted(self) -> bool:
        return self.problem is None


def condition_cost(source: str, program) -> Cost:
    limits = input_limits()
    max_time, max_memory = settings.HITL_CONDITION_MAX_COST, settings.HITL_CONDITION_MAX_MEMORY
    try:
        estimate = cel_cost.estimate(program.serialize(), limits)
    except cel_cost.Unbounded as exc:
        where = f" (at {_where(source, exc.position)})" if exc.position is not None else ""
        return Cost(None, float("inf"), float("inf"), f"Its cost cannot be bounded: {exc}{where}.")
    worst_time, worst_memory = estimate.worst(limits.args)
    if worst_time <= max_time and worst_memory <= max_memory:
        return Cost(estimate, worst_time, worst_memory, None)
    over = []
    if worst_time > max_time:
        over.append(f"{_units(worst_time)} cost units (HITL_CONDITION_MAX_COST: {max_time:,})")
    if worst_memory > max_memory:
        over.append(
            f"{_units(worst_memory)} bytes of memory (HITL_CONDITION_MAX_MEMORY: {max_memory:,})"
        )
    hot = estimate.hot_position
    where = f" The most expensive part is at {_where(source, hot)}." if hot is not None else ""
    return Cost(
        estimate,
        worst_time,
        worst_memory,
        f"Too expensive: on the largest request the API admits ({limits.args:,} bytes of "
        f"arguments) it may take up to {' and '.join(over)}.{where} Bound the input first, "
        "e.g. size(args.x) <= 1000 && …, or avoid building strings and lists from it.",
    )


def _where(source: str, position: int) -> str:
    snippet = source[position : position + 40].split("\n")[0]
    return f"character {position + 1}: “{snippet}”"


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any  # cel Expression
    cost: Cost

    @property
    def admitted(self) -> bool:
        """Within the limits on any request the API admits (else: bounded per request)."""
        return self.cost.admitted

    def over_budget(self, facts: Facts) -> str | None:
        """Why this condition is not evaluated on this request, or None: a condition over
        the limits (stored before the check) is bounded again with the request's own
        argument sizes."""
        if self.cost.admitted:
            return None
        estimate = self.cost.estimate
        if estimate is None:
            return "its cost cannot be bounded"
        time, memory = estimate.at(facts.sizes(estimate.fields))
        if time > settings.HITL_CONDITION_MAX_COST:
            return f"it may cost {_units(time)} units on this request"
        if memory > settings.HITL_CONDITION_MAX_MEMORY:
            return f"it may take {_units(memory)} bytes on this request"
        return None

    def evaluate(self, facts: Facts, *, label: str = "") -> bool:
        """True if the condition holds for the request. An error (a missing key, a type
        mismatch in the agent's arguments) is logged and does not match; so is a condition
        over the evaluation budget for this request, which is not run at all."""
        if (reason := self.over_budget(facts)) is not None:
            note = f"condition of {label or self.source[:60]} not evaluated: {reason} (no match)"
            log.warning("%s", note)
            facts.skipped.append(note)
            return False
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
    """Compile (and type-check) a condition and bound its cost; ConditionError with CEL's
    message if it does not compile. A condition over the cost limits compiles (routing
    keeps one stored before the check, bounded per request); saving one is refused by
    `check_condition`."""
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
    return Condition(source, program, condition_cost(source, program))


def check_condition(source: str) -> Condition:
    """What a condition must pass to be saved: it compiles and its cost on the largest
    request the API admits is within the limits. ConditionError (the field error) otherwise."""
    condition = compile_condition(source)
    if not condition.admitted:
        raise ConditionError(condition.cost.problem)
    return condition


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

    __slots__ = ("_activation", "_sizes", "skipped", "values")

    def __init__(self, values: dict[str, Any]):
        self.values = values
        self._activation = None
        self._sizes: dict[str, float] = {}
        self.skipped: list[str] = []  # conditions not evaluated (over budget), for the notes

    def sizes(self, fields) -> dict[str, float]:
        """The sizes of the argument fields a cost bound names (measured once a request)."""
        missing = [f for f in fields if f not in self._sizes]
        if missing:
            self._sizes.update(cel_cost.field_sizes(self.values.get("args") or {}, missing))
        return self._sizes

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
