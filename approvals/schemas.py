"""Agents' argument schemas (`action.args_schema`): checked when an agent sends one, then used
to check reviewers' edits of the arguments (the API, the review page and its live preview all
call `args_errors`; every edge that accepts a schema calls `check_args_schema`).

The agent writes both the schema and the arguments a reviewer leaves as they are, so both are
hostile input, and checking an edit must take a bounded amount of work:

- Every regular expression runs on RE2 (google-re2), whose matching is linear in the text: no
  backtracking, so no ReDoS. jsonschema's own keywords use Python's `re`; the validator classes
  here replace each keyword that matches one (`pattern`, `patternProperties`, and
  `additionalProperties` / `unevaluatedProperties`, which consult `patternProperties`).
  `format` is not asserted, so `format: regex` compiles nothing.
- A schema is bounded when it arrives: its serialized size, nesting depth and number of
  patterns (settings `HITL_ARGS_SCHEMA_MAX_*`), and every pattern must compile on RE2 (no
  backreferences or lookaround). A 400 names the pattern by its JSON pointer.
- Checking one edit has a budget of work (`HITL_ARGS_SCHEMA_CHECK_BUDGET`): each keyword
  applied, each subschema applied to a value and each regex match (its program's size times
  the text's) costs. An edit the budget cannot check is refused with a 400; the call can still
  be approved or rejected as it is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import re2
import referencing
import referencing.jsonschema
from django.conf import settings
from jsonschema import Draft202012Validator, FormatChecker, SchemaError, ValidationError
from jsonschema import validators as jsonschema_validators

# jsonschema's own lookup of `$recursiveRef` (draft 2019-09), for `unevaluatedProperties` there.
from jsonschema._legacy_keywords import lookup_recursive_ref
from referencing.exceptions import Unresolvable

from core.exceptions import InvalidInput

MAX_SCHEMA_ERRORS = 20
REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")

# --- the cost of checking an edit ---------------------------------------------------------------
# In work units of roughly 100 ns each on one core (bench/hostile_schema.py measures them):
KEYWORD_COST = 20  # calling one keyword on one value
APPLY_COST = 60  # applying a subschema to a value (jsonschema evolves a validator), plus 1 a key
REGEX_BYTES_PER_UNIT = 8  # RE2's worst case: about 13 ns per program instruction per text byte

# RE2 refuses a pattern whose program would need more memory than this (a huge repetition).
REGEX_MAX_MEM = 1 << 20


class TooCostly(Exception):
    """The budget of one check ran out."""


class _Budget:
    def __init__(self, units: int, max_keys: int):
        self.left = units
        self.max_keys = max_keys  # the largest object of the schema: what a `$ref` may land on
        self.sizes: dict[int, int] = {}

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise TooCostly


_budget: ContextVar[_Budget | None] = ContextVar("args_schema_budget", default=None)


def _spend(units: int) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.spend(units)


def _nodes(value: Any) -> int:
    """How many JSON values `value` holds (itself included)."""
    if isinstance(value, dict):
        return 1 + sum(_nodes(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_nodes(v) for v in value)
    return 1


def _size_of(value: Any) -> int:
    """`_nodes` of a schema's keyword value, once per check (the schema does not change)."""
    budget = _budget.get()
    if budget is None:
        return 0
    size = budget.sizes.get(id(value))
    if size is None:
        size = budget.sizes[id(value)] = _nodes(value)
    return size


def _apply_cost(schema: Any) -> int:
    return APPLY_COST + (len(schema) if isinstance(schema, dict) else 0)


# --- RE2 -----------------------------------------------------------------------------------------


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the agent's error, not the portal's log
    options.max_mem = REGEX_MAX_MEM
    return options


_OPTIONS = _re2_options()


class UnusablePattern(Exception):
    """A pattern RE2 cannot run (one stored before the create-time check)."""


@functools.lru_cache(maxsize=256)
def regex(pattern: str):
    """`pattern` compiled by RE2; re2.error if it cannot run there."""
    return re2.compile(pattern, _OPTIONS)


def regex_error(pattern: str) -> str | None:
    """Why RE2 cannot run `pattern`, or None."""
    try:
        regex(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return None


def _search(pattern: str, text: str) -> bool:
    try:
        compiled = regex(pattern)
    except re2.error:
        raise UnusablePattern(pattern) from None
    size = len(text.encode("utf-8", "surrogatepass"))
    _spend(KEYWORD_COST + compiled.programsize * size // REGEX_BYTES_PER_UNIT)
    return compiled.search(text) is not None


# --- the keywords that match regexes, and those whose cost the budget must see -------------------


def _extras(extras: list) -> str:
    verb = "was" if len(extras) == 1 else "were"
    return f"{', '.join(repr(extra) for extra in extras)} {verb}"


def pattern_keyword(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def pattern_properties_keyword(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(instance: dict, schema: dict) -> Iterator[str]:
    """The keys neither `properties` nor `patternProperties` cover."""
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for key in instance:
        if key not in properties and not any(_search(p, key) for p in patterns):
            yield key


def additional_properties_keyword(validator, additional, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    extras = set(_additional_properties(instance, schema))
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            yield ValidationError(
                f"Additional properties are not allowed ({_extras(sorted(extras, key=str))} "
                "unexpected)"
            )


def _is_valid(errors: Iterator) -> bool:
    return next(errors, None) is None


def _evaluated_keys(validator, instance: dict, schema: Any, legacy: bool) -> set[str]:
    """The keys of `instance` that `schema` (and what it applies in place) evaluates, as
    jsonschema's `find_evaluated_property_keys_by_schema` finds them (`legacy`: draft
    2019-09's rules) — with `patternProperties` matched by RE2."""
    if validator.is_type(schema, "boolean"):
        return set()
    keys: set[str] = set()

    def follow(resolved) -> None:
        evolved = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
        keys.update(_evaluated_keys(evolved, instance, resolved.contents, legacy))

    if (ref := schema.get("$ref")) is not None:
        follow(validator._resolver.lookup(ref))
    if legacy and "$recursiveRef" in schema:
        follow(lookup_recursive_ref(validator._resolver))
    if not legacy and (dynamic := schema.get("$dynamicRef")) is not None:
        follow(validator._resolver.lookup(dynamic))

    if legacy:
        for keyword in ("properties", "additionalProperties", "unevaluatedProperties"):
            value = schema.get(keyword)
            if value is True:
                keys.update(instance)
            elif isinstance(value, dict):
                keys.update(k for k in value if k in instance)
    else:
        properties = schema.get("properties")
        if validator.is_type(properties, "object"):
            keys.update(properties.keys() & instance.keys())
        for keyword in ("additionalProperties", "unevaluatedProperties"):
            if (subschema := schema.get(keyword)) is not None:
                keys.update(
                    k for k, v in instance.items() if _is_valid(validator.descend(v, subschema))
                )

    for pattern in schema.get("patternProperties", {}):
        keys.update(k for k in instance if _search(pattern, k))

    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys.update(_evaluated_keys(validator, instance, subschema, legacy))

    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _is_valid(validator.descend(instance, subschema)):
                keys.update(_evaluated_keys(validator, instance, subschema, legacy))

    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys.update(_evaluated_keys(validator, instance, schema["if"], legacy))
            if "then" in schema:
                keys.update(_evaluated_keys(validator, instance, schema["then"], legacy))
        elif "else" in schema:
            keys.update(_evaluated_keys(validator, instance, schema["else"], legacy))
    return keys


def _unevaluated_properties(legacy: bool) -> Callable:
    def unevaluated_properties_keyword(validator, unevaluated, instance, schema):
        if not validator.is_type(instance, "object"):
            return
        evaluated = _evaluated_keys(validator, instance, schema, legacy)
        bad = [
            key
            for key in instance
            if key not in evaluated
            and not _is_valid(
                validator.descend(instance[key], unevaluated, path=key, schema_path=key)
            )
        ]
        if not bad:
            return
        if unevaluated is False:
            yield ValidationError(
                f"Unevaluated properties are not allowed ({_extras(sorted(bad, key=str))} "
                "unexpected)"
            )
        else:
            yield ValidationError(
                "Unevaluated properties are not valid under the given schema "
                f"({_extras(bad)} unevaluated and invalid)"
            )

    return unevaluated_properties_keyword


def _frozen(value: Any) -> Any:
    """A hashable form of a JSON value: equal exactly when jsonschema's `equal` says so (1 and
    1.0 are equal, true and 1 are not, key order does not matter)."""
    if isinstance(value, dict):
        _spend(APPLY_COST + len(value))
        return ("object", frozenset((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        _spend(APPLY_COST + len(value))
        return ("array", tuple(_frozen(v) for v in value))
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, str):
        return ("string", value)
    return ("value", value)  # numbers and null


def unique_items_keyword(validator, unique, instance, schema):
    """jsonschema's compares every pair of items when it cannot sort them (objects, mixed
    types): quadratic. One pass over hashable forms says the same."""
    if (
        unique
        and validator.is_type(instance, "array")
        and len({_frozen(item) for item in instance}) != len(instance)
    ):
        yield ValidationError(f"{instance!r} has non-unique elements")


class _Metered:
    """The validator a keyword sees: every subschema it applies to a value (`descend`, or
    `evolve` then `is_valid`/`iter_errors`) is charged before it runs."""

    __slots__ = ("_validator",)

    def __init__(self, validator):
        self._validator = validator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._validator, name)

    def descend(self, instance, schema, *args, **kwargs):
        _spend(_apply_cost(schema))
        return self._validator.descend(instance, schema, *args, **kwargs)

    def evolve(self, **changes) -> _Metered:
        return _Metered(self._validator.evolve(**changes))

    def is_valid(self, instance) -> bool:
        _spend(_apply_cost(self._validator.schema))
        return self._validator.is_valid(instance)

    def iter_errors(self, instance):
        _spend(_apply_cost(self._validator.schema))
        return self._validator.iter_errors(instance)


def _metered(keyword: str, function: Callable) -> Callable:
    """`function` charging what it is about to do: the call, plus what its value makes it loop
    over (the enum's values, the required names, ...), plus the keyword's own loops that no
    subschema application shows (a `$ref` landing on an object with many keys,
    `unevaluatedItems`' list look-ups)."""

    def metered(validator, value, instance, schema):
        cost = KEYWORD_COST
        if keyword in ("const", "enum"):
            cost += _size_of(value)  # deep comparisons, each at most as big as the value
        elif isinstance(value, dict | list):
            cost += len(value)
        if keyword in REF_KEYWORDS:
            budget = _budget.get()
            cost += APPLY_COST + (budget.max_keys if budget else 0)
        if keyword == "unevaluatedItems" and isinstance(instance, list):
            cost += len(instance) ** 2 // 2  # jsonschema looks each index up in a list
        _spend(cost)
        return function(_Metered(validator), value, instance, schema)

    return metered


OWN_KEYWORDS = {
    "pattern": pattern_keyword,
    "patternProperties": pattern_properties_keyword,
    "additionalProperties": additional_properties_keyword,
    "uniqueItems": unique_items_keyword,
}


@functools.cache
def _validator_class(base: type) -> type:
    """`base` (a jsonschema validator class: one per dialect) on RE2, metered."""
    keywords = {**base.VALIDATORS}
    for name in OWN_KEYWORDS.keys() & keywords.keys():
        keywords[name] = OWN_KEYWORDS[name]
    if "unevaluatedProperties" in keywords:
        legacy = base.META_SCHEMA.get("$schema", "").find("2019-09") >= 0
        keywords["unevaluatedProperties"] = _unevaluated_properties(legacy)
    return jsonschema_validators.extend(
        base, {name: _metered(name, function) for name, function in keywords.items()}
    )


def validator_class(schema: dict) -> type:
    """The validator class for `schema`'s dialect (its `$schema`, else draft 2020-12)."""
    return _validator_class(
        jsonschema_validators.validator_for(schema, default=Draft202012Validator)
    )


# --- at create ---------------------------------------------------------------------------------


def _pointer(path: list) -> str:
    """RFC 6901: `["properties", "a/b"]` → `/properties/a~1b`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# Where subschemas are, in every dialect jsonschema knows (a keyword a dialect lacks is walked
# too: a pattern there must compile anyway). Everything else is data or annotation.
IN_VALUE = {
    "additionalItems", "additionalProperties", "contains", "contentSchema", "else", "extends",
    "if", "items", "not", "propertyNames", "then", "unevaluatedItems", "unevaluatedProperties",
}  # fmt: skip
IN_ARRAY = {"allOf", "anyOf", "oneOf", "prefixItems", "items", "extends", "type", "disallow"}
IN_VALUES = {"$defs", "definitions", "dependentSchemas", "dependencies", "patternProperties",
             "properties"}  # fmt: skip


def subschemas(
    schema: Any, path: list | None = None, parent: dict | None = None
) -> Iterator[tuple[dict, list, dict | None]]:
    """Every (sub)schema object of `schema`: (it, its path, the subschema it is in), the root
    first and every parent before its children."""
    path = path or []
    if not isinstance(schema, dict):
        return
    yield schema, path, parent
    for keyword, value in schema.items():
        if keyword in IN_VALUE and isinstance(value, dict):
            yield from subschemas(value, [*path, keyword], schema)
        if keyword in IN_ARRAY and isinstance(value, list):
            for i, item in enumerate(value):
                yield from subschemas(item, [*path, keyword, i], schema)
        if keyword in IN_VALUES and isinstance(value, dict):
            for name, item in value.items():
                yield from subschemas(item, [*path, keyword, name], schema)


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, "args_schema")


def _check_size(schema: dict) -> None:
    size = len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode())
    if size > settings.HITL_ARGS_SCHEMA_MAX_BYTES:
        raise _refuse(
            f"args_schema is {size} bytes; at most {settings.HITL_ARGS_SCHEMA_MAX_BYTES} "
            "are allowed."
        )
    depth = _depth(schema)
    if depth > settings.HITL_ARGS_SCHEMA_MAX_DEPTH:
        raise _refuse(
            f"args_schema is nested {depth} levels deep; at most "
            f"{settings.HITL_ARGS_SCHEMA_MAX_DEPTH} are allowed."
        )


def _check_patterns(schema: dict) -> None:
    count = 0
    for sub, path, _parent in subschemas(schema):
        found = []
        if isinstance(sub.get("pattern"), str):
            found.append((sub["pattern"], [*path, "pattern"]))
        if isinstance(sub.get("patternProperties"), dict):
            found += [(p, [*path, "patternProperties", p]) for p in sub["patternProperties"]]
        for pattern, where in found:
            count += 1
            if count > settings.HITL_ARGS_SCHEMA_MAX_PATTERNS:
                raise _refuse(
                    f"args_schema has more than {settings.HITL_ARGS_SCHEMA_MAX_PATTERNS} patterns."
                )
            if (reason := regex_error(pattern)) is not None:
                raise _refuse(
                    f"args_schema {_pointer(where)}: the portal runs patterns with RE2, which "
                    f"cannot run {pattern!r} ({reason}); backreferences and lookaround are not "
                    "supported."
                )


def _schema_format_checker(base: type) -> FormatChecker:
    """The dialect's format checks for the schema itself, but `regex`, whose check compiles
    the pattern with Python's `re` (`_check_patterns` compiles it with RE2 instead)."""
    checker = FormatChecker(formats=())
    checker.checkers = {k: v for k, v in base.FORMAT_CHECKER.checkers.items() if k != "regex"}
    return checker


def check_args_schema(schema: Any) -> dict:
    """An agent's `action.args_schema`: a JSON Schema (its own `$schema`, else draft
    2020-12) within the size, depth and pattern limits, whose patterns RE2 runs. Raises
    InvalidInput naming what is wrong with it (field `args_schema`).

    The schema comes from the agent, and the portal validates edits against it: so it must be
    self-contained. A reference to anything outside it (`{"$ref": "http://..."}`) is refused
    (resolving it would make the portal fetch a URL the agent chose), and every local one
    (`#/$defs/...`, `#anchor`) must resolve."""
    if not isinstance(schema, dict):
        raise _refuse("args_schema must be a JSON Schema object.")
    if not isinstance(schema.get("$schema", ""), str):
        raise _refuse("args_schema: $schema must be a dialect URI.")
    _check_size(schema)  # first: what follows walks it
    base = jsonschema_validators.validator_for(schema, default=Draft202012Validator)
    try:
        base.check_schema(schema, format_checker=_schema_format_checker(base))
    except SchemaError as exc:
        where = _pointer(list(exc.absolute_path))
        raise _refuse(
            f"Not a valid JSON Schema: {f'{where}: ' if where else ''}{exc.message}"
        ) from None
    _check_patterns(schema)
    _check_refs(schema)
    return schema


def _check_refs(schema: dict) -> None:
    """Every reference is local and resolves, from where it is (an `$id` moves the base)."""
    specification = referencing.jsonschema.specification_with(
        schema.get("$schema", ""), default=referencing.jsonschema.DRAFT202012
    )
    root = referencing.Registry().resolver_with_root(specification.create_resource(schema))
    resolvers: dict[int, referencing.Resolver] = {}
    for sub, path, parent in subschemas(schema):
        resolver = resolvers[id(sub)] = (
            root
            if parent is None
            else resolvers[id(parent)].in_subresource(specification.create_resource(sub))
        )
        for keyword in REF_KEYWORDS:
            if keyword not in sub:
                continue
            ref = sub[keyword]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise _refuse(
                    f"args_schema {_pointer([*path, keyword])}: {ref!r} points outside the "
                    'schema; only local references ("#/$defs/...") are allowed.'
                )
            try:
                resolver.lookup(ref)
            except Unresolvable:
                raise _refuse(
                    f"args_schema {_pointer([*path, keyword])}: {ref!r} does not resolve "
                    "within the schema."
                ) from None


# --- checking an edit ----------------------------------------------------------------------------


def _max_keys(schema: Any) -> int:
    if isinstance(schema, dict):
        return max([len(schema), *(_max_keys(v) for v in schema.values())])
    if isinstance(schema, list):
        return max([0, *(_max_keys(v) for v in schema)])
    return 0


# jsonschema's messages quote the offending value whole: a 1 MB string would come back as a
# 1 MB error. Enough of it to recognise.
MAX_MESSAGE_CHARS = 300


def _bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    half = MAX_MESSAGE_CHARS // 2  # the value comes first, what is wrong with it last
    return f"{message[:half]} …({len(message) - 2 * half} characters)… {message[-half:]}"


def args_errors(schema: dict | None, args: Any) -> dict[str, list[str]]:
    """Where `args` break `schema`: {"path.to.field": [messages]} (`non_field_errors` for the
    object itself, e.g. a missing required property); empty when they fit (or there is no
    schema).

    The validator gets an empty registry: it never retrieves anything, whatever the schema
    (one stored before `check_args_schema` refused remote references) points at. A schema
    that cannot be used (an unresolvable or endlessly circular reference, a pattern RE2 cannot
    run) or an edit the budget cannot check raises InvalidInput, never a server error."""
    if not schema:
        return {}
    token = _budget.set(_Budget(settings.HITL_ARGS_SCHEMA_CHECK_BUDGET, _max_keys(schema)))
    try:
        validator = validator_class(schema)(schema, registry=referencing.Registry())
        errors: dict[str, list[str]] = {}
        for error in sorted(validator.iter_errors(args), key=lambda e: list(map(str, e.path))):
            path = ".".join(str(p) for p in error.absolute_path) or "non_field_errors"
            errors.setdefault(path, []).append(_bounded(error.message))
            if len(errors) >= MAX_SCHEMA_ERRORS:
                break
    except TooCostly:
        raise InvalidInput(
            "The tool's argument schema is too costly to check against these arguments "
            f"(more than {settings.HITL_ARGS_SCHEMA_CHECK_BUDGET} units of work); approve or "
            "reject the call as it is.",
            "action",
        ) from None
    except (Unresolvable, SchemaError, RecursionError, UnusablePattern, AttributeError) as exc:
        # (AttributeError: `referencing` on some draft-04 `dependencies` shapes.)
        raise InvalidInput(
            f"The tool's argument schema cannot check this edit ({type(exc).__name__}); "
            "approve or reject the call as it is.",
            "action",
        ) from None
    finally:
        _budget.reset(token)
    return errors
