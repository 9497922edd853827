"""What a CEL condition can cost, before it runs: a static bound over the checked AST.

`cel-expr-python` exposes no cost tracker and none of cel-cpp's RuntimeOptions: the only
limit inside the runtime is cel-cpp's default comprehension budget (10,000 iterations per
evaluation in total, `ITERATION_BUDGET`; a test pins it). Strings and lists can still grow
without bound: `s.replace("a", s)` squares its input, `l.map(x, x)` copies its accumulator
at every step (quadratic), `matches` runs RE2, whose NFA costs input times program size. So we
bound a condition from its AST (`Expression.serialize()` is a `cel.expr.CheckedExpr`, read
here with protobuf), the way cel-go's cost estimator does, and refuse what cannot be bounded
(a function we have no formula for, a non-literal regex or format string, an accumulator that
grows faster than its input).

The bound is a polynomial over the sizes of the request's argument fields (`args.paths` is
one variable; every field of `args` shares the request's size: their sum is at most the body
limit) and is evaluated twice: at save with the largest request the API admits (`worst`), and,
for a condition stored before this check that exceeds the limits, at each request with that
request's sizes (`at`), so such a condition keeps working on small requests and is skipped,
not run, on large ones.

Sizes are in "JSON bytes": a value's size is at most the length of its compact JSON, so a
request's arguments are at most the body limit, and a list of size S has at most S/2
elements. Time is in units of about a nanosecond on the reference machine (the weights below
were measured with `bench/conditions.py`), memory in bytes allocated (cel-cpp allocates an
evaluation's values in an arena and frees them at the end, so what is allocated is what is
held). Converting the request's own values into CEL happens once per request (the activation
caches it, whatever the number of conditions) and is bounded by the body limit: it is not a
condition's cost.

Comprehensions: an iteration variable is a variable of the polynomial while its body is
estimated; summing the body over the iterations replaces it by the range's size (the
elements' sizes add up to it: Σ f(xᵢ) ≤ f(S) for the terms in x, all coefficients being
positive), and what does not depend on it is paid once per iteration: at most the
comprehension's element count, and, over the whole evaluation, at most `ITERATION_BUDGET`
times the largest such per-iteration cost (the runtime stops at that many iterations).

Guards narrow sizes: on the right of `size(args.x) <= K && ...`, `args.x` has at most K
elements, or, as a string, at most 4K bytes (CEL evaluates the right side only if the guard
held, or if it failed on a value without a size: a number, absent).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

# cel-cpp's RuntimeOptions.comprehension_max_iterations default, not settable through the
# binding: an evaluation stops ("Iteration budget exceeded") after this many iterations.
ITERATION_BUDGET = 10_000

# --- weights: time units (≈ ns) and bytes; measured, rounded up (bench/conditions.py) -------
W_NODE = 50  # evaluating one AST node
W_ITER = 150  # one comprehension step, besides its nodes
W_BYTE = 1  # copying or comparing a byte
W_SCAN = 3  # walking a byte as UTF-8 (size() of a string)
W_CHAR = 20  # code-point work per byte (indexOf, trim, reverse, quote, substring, ...)
W_FIND = 0.05  # substring search: per byte of haystack and byte of needle
W_ELEM = 150  # creating, copying or comparing one list or map element
W_REPLACE = 120  # replace(): per byte of input
W_REGEX = 20  # RE2: per byte of input
W_REGEX_INST = 20  # RE2's NFA: per byte of input and instruction of the program
W_REGEX_COMPILE = 200  # compiling a pattern given at run time: per byte
M_VALUE = 32  # bytes of one value
M_ELEM = 48  # bytes of one list element

MAX_REGEX_PROGRAM = 350_000  # RE2's default memory budget (8 MiB) in instructions, roughly
SCALAR = 32  # the largest JSON of a number, boolean or null
ARGS = "a:"  # the variable for the whole of `args`; "a:<field>" for one field


class Unbounded(ValueError):
    """The condition's cost has no bound we can compute. `position`: offset in the source."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position


# --- polynomials with positive coefficients --------------------------------------------------

Mono = tuple[tuple[str, int], ...]  # sorted (variable, power); () is the constant term


def _mul_mono(a: Mono, b: Mono) -> Mono:
    powers = dict(a)
    for v, p in b:
        powers[v] = powers.get(v, 0) + p
    return tuple(sorted(powers.items()))


class Poly:
    """A polynomial over non-negative variables with non-negative coefficients: an upper
    bound that adds, multiplies, takes maxima (coefficient-wise, which dominates both) and
    substitutes."""

    __slots__ = ("terms",)

    def __init__(self, terms: Mapping[Mono, float] | None = None):
        self.terms: dict[Mono, float] = {m: c for m, c in (terms or {}).items() if c > 0}

    @classmethod
    def of(cls, value: Poly | float) -> Poly:
        return value if isinstance(value, Poly) else cls({(): float(value)})

    @classmethod
    def var(cls, name: str) -> Poly:
        return cls({((name, 1),): 1.0})

    def __add__(self, other: Poly | float) -> Poly:
        terms = dict(self.terms)
        for m, c in Poly.of(other).terms.items():
            terms[m] = terms.get(m, 0.0) + c
        return Poly(terms)

    __radd__ = __add__

    def __mul__(self, other: Poly | float) -> Poly:
        if not isinstance(other, Poly):
            return Poly({m: c * other for m, c in self.terms.items()})
        terms: dict[Mono, float] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = _mul_mono(m1, m2)
                terms[m] = terms.get(m, 0.0) + c1 * c2
        return Poly(terms)

    __rmul__ = __mul__

    def join(self, other: Poly | float) -> Poly:
        terms = dict(self.terms)
        for m, c in Poly.of(other).terms.items():
            terms[m] = max(terms.get(m, 0.0), c)
        return Poly(terms)

    @property
    def constant(self) -> float | None:
        """The value, if the polynomial has no variables."""
        if all(m == () for m in self.terms):
            return self.terms.get((), 0.0)
        return None

    def variables(self) -> set[str]:
        return {v for m in self.terms for v, _ in m}

    def split(self, pred: Callable[[str], bool]) -> tuple[Poly, Poly]:
        """(the terms with a variable `pred` holds for, the others)."""
        yes = {m: c for m, c in self.terms.items() if any(pred(v) for v, _ in m)}
        return Poly(yes), Poly({m: c for m, c in self.terms.items() if m not in yes})

    def subst(self, name: str, value: Poly | float) -> Poly:
        value = Poly.of(value)
        out = Poly()
        for m, c in self.terms.items():
            rest = tuple((v, p) for v, p in m if v != name)
            power = dict(m).get(name, 0)
            term = Poly({rest: c})
            for _ in range(power):
                term = term * value
            out = out + term
        return out

    def at(self, values: Mapping[str, float]) -> float:
        total = 0.0
        for m, c in self.terms.items():
            for v, p in m:
                c *= values.get(v, 0.0) ** p
            total += c
        return total

    def __repr__(self) -> str:
        return " + ".join(f"{c:g}·{m}" for m, c in self.terms.items()) or "0"


def worst(poly: Poly, args_limit: float) -> float:
    """The polynomial's largest value over requests whose arguments are at most `args_limit`:
    every field variable at most the limit, and their sum too (a simplex). A linear term in
    one field takes the whole limit (the largest such coefficient counts, not their sum);
    other terms are bounded one by one (AM-GM over the fields they multiply)."""
    linear = 0.0
    total = 0.0
    for m, c in poly.terms.items():
        fields = [(v, p) for v, p in m if v.startswith(ARGS) and v != ARGS]
        if len(m) == 1 and len(fields) == 1 and fields[0][1] == 1:
            linear = max(linear, c * args_limit)
            continue
        degree = sum(p for _, p in fields)
        bound = c * args_limit ** sum(p for _, p in m)
        for _, p in fields:
            bound *= (p / degree) ** p
        total += bound
    return total + linear


# --- the checked AST (cel.expr.CheckedExpr), read with protobuf ---------------------------------


def _descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The part of cel-spec's syntax.proto and checked.proto we read, by field number (the
    wire format; fields we leave out are skipped when parsing)."""
    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="hitl/cel_checked.proto", package="hitl.cel", syntax="proto3"
    )
    msg_type = ".hitl.cel."
    messages = {
        "Constant": [("bool_value", 2, F.TYPE_BOOL), ("int64_value", 3, F.TYPE_INT64),
                     ("uint64_value", 4, F.TYPE_UINT64), ("double_value", 5, F.TYPE_DOUBLE),
                     ("string_value", 6, F.TYPE_STRING), ("bytes_value", 7, F.TYPE_BYTES)],
        "Ident": [("name", 1, F.TYPE_STRING)],
        "Select": [("operand", 1, "Expr"), ("field", 2, F.TYPE_STRING),
                   ("test_only", 3, F.TYPE_BOOL)],
        "Call": [("target", 1, "Expr"), ("function", 2, F.TYPE_STRING), ("args", 3, "*Expr")],
        "CreateList": [("elements", 1, "*Expr")],
        "Entry": [("map_key", 3, "Expr"), ("value", 4, "Expr")],
        "CreateStruct": [("message_name", 1, F.TYPE_STRING), ("entries", 2, "*Entry")],
        "Comprehension": [("iter_var", 1, F.TYPE_STRING), ("iter_range", 2, "Expr"),
                          ("accu_var", 3, F.TYPE_STRING), ("accu_init", 4, "Expr"),
                          ("loop_condition", 5, "Expr"), ("loop_step", 6, "Expr"),
                          ("result", 7, "Expr"), ("iter_var2", 8, F.TYPE_STRING)],
        "Expr": [("id", 2, F.TYPE_INT64), ("const_expr", 3, "Constant"),
                 ("ident_expr", 4, "Ident"), ("select_expr", 5, "Select"),
                 ("call_expr", 6, "Call"), ("list_expr", 7, "CreateList"),
                 ("struct_expr", 8, "CreateStruct"), ("comprehension_expr", 9, "Comprehension")],
        "Reference": [("name", 1, F.TYPE_STRING), ("overload_id", 3, "*" + "string")],
        "SourceInfo": [("positions", 4, "PositionsEntry")],
        "CheckedExpr": [("reference_map", 2, "ReferenceMapEntry"), ("expr", 4, "Expr"),
                        ("source_info", 5, "SourceInfo")],
    }  # fmt: skip
    maps = {"SourceInfo": ("PositionsEntry", F.TYPE_INT32, None),
            "CheckedExpr": ("ReferenceMapEntry", None, "Reference")}  # fmt: skip
    oneofs = {"Expr": "expr_kind", "Constant": "constant_kind"}
    for name, fields in messages.items():
        message = proto.message_type.add(name=name)
        if name in oneofs:
            message.oneof_decl.add(name=oneofs[name])
        if name in maps:
            entry_name, scalar, value_message = maps[name]
            entry = message.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
            value = entry.field.add(name="value", number=2, label=F.LABEL_OPTIONAL)
            if scalar is not None:
                value.type = scalar
            else:
                value.type, value.type_name = F.TYPE_MESSAGE, msg_type + value_message
        for fname, number, kind in fields:
            f = message.field.add(name=fname, number=number, label=F.LABEL_OPTIONAL)
            if name in oneofs and fname != "id":
                f.oneof_index = 0
            if isinstance(kind, int):
                f.type = kind
                continue
            if kind.startswith("*"):
                f.label, kind = F.LABEL_REPEATED, kind[1:]
            if kind == "string":
                f.type = F.TYPE_STRING
            elif kind.endswith("Entry") and name in maps:
                f.label, f.type = F.LABEL_REPEATED, F.TYPE_MESSAGE
                f.type_name = f"{msg_type}{name}.{kind}"
            else:
                f.type, f.type_name = F.TYPE_MESSAGE, msg_type + kind
    return proto


@lru_cache(maxsize=1)
def _checked_class():
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("hitl.cel.CheckedExpr"))


def checked_ast(serialized: bytes):
    """`Expression.serialize()`: a google.protobuf.Any holding a cel.expr.CheckedExpr."""
    wrapper = any_pb2.Any()
    wrapper.ParseFromString(serialized)
    checked = _checked_class()()
    checked.ParseFromString(wrapper.value)
    return checked


# --- the estimate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """What evaluating one subexpression may cost: its value's size, time and memory (upper
    bounds), and what is known for guards and formulas."""

    size: Poly
    time: Poly
    memory: Poly
    literal: Any = None  # the value of a constant
    path: str | None = None  # "a:<field>" for args.<field>... (a guard's subject)
    string_size: Poly | None = None  # a guard's bound on its size as a string
    count: Poly | None = None  # a guard's bound on its element count

    @property
    def as_string(self) -> Poly:
        """Its size where it is a string: a literal's bytes, a guard's bound, or its size."""
        if isinstance(self.literal, str):
            return _const(len(self.literal.encode()))
        return self.string_size if self.string_size is not None else self.size

    @property
    def elements(self) -> Poly:
        return self.count if self.count is not None else self.size * 0.5


def _const(value: float) -> Poly:
    return Poly.of(value)


Formula = Callable[[list[Node]], tuple[Poly, Poly, Poly]]  # (size, time, memory)


def _min_bound(a: Poly, b: Poly) -> Poly:
    """A bound on min(a, b): a constant side if there is one, else a."""
    ca, cb = a.constant, b.constant
    if ca is not None and cb is not None:
        return _const(min(ca, cb))
    return b if cb is not None else a


def _scalar(_args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return _const(SCALAR), _const(0), _const(0)


def _equals(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    # Deep equality: element by element (the worst case, lists) or byte by byte.
    return _const(1), _min_bound(args[0].size, args[1].size) * W_ELEM, _const(0)


def _compare(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return _const(1), _min_bound(args[0].as_string, args[1].as_string) * W_BYTE, _const(0)


def _concat_string(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    out = args[0].as_string + args[1].as_string
    return out, out * W_BYTE, out + M_VALUE


def _concat_list(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    out = args[0].size + args[1].size
    elements = args[0].elements + args[1].elements
    return out, elements * W_ELEM, elements * M_ELEM + M_VALUE


def _string_size(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return _const(SCALAR), args[0].as_string * W_SCAN, _const(0)


def _find(walk: float) -> Formula:
    """contains (bytes), indexOf, lastIndexOf (code points): a search of the needle in the
    haystack (a byte search compares up to the needle's length at each position)."""

    def formula(args: list[Node]) -> tuple[Poly, Poly, Poly]:
        hay, needle = args[0].as_string, args[1].as_string
        return _const(SCALAR), hay * walk + hay * needle * W_FIND, _const(0)

    return formula


def _affix(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return _const(1), _min_bound(args[0].as_string, args[1].as_string) * W_BYTE, _const(0)


def _walk(expand: float = 1) -> Formula:
    """A string function that walks its receiver and makes a string of at most `expand`
    times its size (trim, reverse, lowerAscii, substring, charAt, quote)."""

    def formula(args: list[Node]) -> tuple[Poly, Poly, Poly]:
        out = args[0].as_string * expand + 2
        return out, args[0].as_string * W_CHAR + out * W_BYTE, out + M_VALUE

    return formula


def _literal_string(node: Node) -> str | None:
    return node.literal if isinstance(node.literal, str) else None


def _literal_int(node: Node) -> int | None:
    value = node.literal
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _replace(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    s, old, new = args[0].as_string, args[1], args[2].as_string
    old_text = _literal_string(old)
    # Occurrences: at most one per len(old) bytes; an empty (or unknown) `old` matches
    # between every two characters. Each takes len(old) bytes out and puts `new` in.
    step = len(old_text.encode()) if old_text else 0
    hits = s * (1 / step) + 1 if step else s + 1
    if len(args) == 4 and (limit := _literal_int(args[3])) is not None and limit >= 0:
        hits = _const(limit)
    new_text = _literal_string(args[2])
    if new_text is not None:
        out = s + hits * max(len(new_text.encode()) - step, 0)
    else:
        out = s + hits * new
    return out, s * W_REPLACE + out * W_BYTE, out + M_VALUE


def _split(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    s = args[0].as_string
    parts = s + 1
    if len(args) == 3 and (limit := _literal_int(args[2])) is not None and limit >= 0:
        parts = _const(limit)
    out = s + parts * 4
    return out, s * W_BYTE + parts * W_ELEM, s + parts * (M_ELEM + M_VALUE)


def _join(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    items = args[0]
    sep = args[1].as_string if len(args) > 1 else _const(0)
    out = items.size + items.elements * sep
    return out, items.elements * W_ELEM + out * W_BYTE, out + M_VALUE


_VERB = re.compile(r"%(?:\.(\d+))?[a-zA-Z%]")


def _format(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    """`"...".format([...])`: only a literal format string has a bound (its verbs and their
    precision say how long each formatted value can be)."""
    template = _literal_string(args[0])
    if template is None:
        raise Unbounded("format() needs a literal format string to be bounded")
    verbs = _VERB.findall(template)
    precision = max((int(p) for p in verbs if p), default=6)
    # A value prints at most ~25 bytes per byte of JSON (a double as a string); a %f of a
    # double up to 309 digits plus the precision.
    out = _const(len(template.encode())) + args[1].size * 25 + len(verbs) * (precision + 330)
    return out, out * W_CHAR + args[1].elements * W_ELEM, out + M_VALUE


def _matches(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    subject, pattern = args[0].as_string, args[1]
    text = _literal_string(pattern)
    if text is not None:
        instructions = _Re2.program_size(text)
        compile_time = _const(0)  # a literal pattern is compiled with the expression
    else:
        instructions = MAX_REGEX_PROGRAM
        compile_time = pattern.as_string * W_REGEX_COMPILE
    time = subject * (W_REGEX + W_REGEX_INST * instructions) + compile_time
    return _const(1), time, _const(M_VALUE * 16)


def _to_string(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    out = args[0].size + SCALAR
    return out, out * W_SCAN, out + M_VALUE


def _parse(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    """int("12"), duration("1h"), timestamp("..."), bool("true"): a parse of the string."""
    return _const(SCALAR), args[0].as_string * W_SCAN, _const(M_VALUE)


def _passthrough(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return args[0].size, _const(0), _const(0)


def _in_list(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return _const(1), args[1].size * W_ELEM, _const(0)


def _in_map(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return _const(1), args[0].size * W_BYTE, _const(0)


def _index(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return args[0].size, args[1].size * W_BYTE, _const(0)


def _logic(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return _const(1), _const(0), _const(0)


def _conditional(args: list[Node]) -> tuple[Poly, Poly, Poly]:
    return args[1].size.join(args[2].size), _const(0), _const(0)


_SCALAR_OVERLOADS = re.compile(
    r"(add|subtract|multiply|divide|modulo|negate)_(int64|uint64|double|duration|timestamp)"
    r"(_duration|_timestamp)?|(less|greater|less_equals|greater_equals)_"
    r"(int64|uint64|double|bool|timestamp|duration)(_int64|_uint64|_double)?"
    r"|timestamp_to_\w+|duration_to_\w+"
    r"|(int64|uint64|double)_to_(int64|uint64|double|timestamp|duration)"
    r"|(timestamp|duration|bool)_to_(int64|bool)|(list|map|bytes)_size|size_(list|map|bytes)"
    r"|type|to_dyn|bool_to_bool|logical_not"
)

# Overload id → formula over [receiver, args...] (cel-cpp's standard library and the strings
# extension v4). A call is bounded by the largest formula among the overloads the checker
# left possible.
FORMULAS: dict[str, Formula] = {
    "logical_and": _logic, "logical_or": _logic, "not_strictly_false": _logic,
    "conditional": _conditional,
    "equals": _equals, "not_equals": _equals,
    "add_string": _concat_string, "add_bytes": _concat_string, "add_list": _concat_list,
    "string_size": _string_size, "size_string": _string_size,
    "contains_string": _find(W_BYTE), "string_index_of_string": _find(W_CHAR),
    "string_index_of_string_int": _find(W_CHAR), "string_last_index_of_string": _find(W_CHAR),
    "string_last_index_of_string_int": _find(W_CHAR),
    "starts_with_string": _affix, "ends_with_string": _affix,
    "matches": _matches, "matches_string": _matches,
    "string_replace_string_string": _replace, "string_replace_string_string_int": _replace,
    "string_split_string": _split, "string_split_string_int": _split,
    "list_join": _join, "list_join_string": _join,
    "string_format": _format,
    "string_char_at_int": _walk(), "string_substring_int": _walk(),
    "string_substring_int_int": _walk(), "string_trim": _walk(), "string_reverse": _walk(),
    "string_lower_ascii": _walk(), "string_upper_ascii": _walk(), "strings_quote": _walk(6),
    "string_to_string": _to_string, "bytes_to_string": _to_string,
    "string_to_bytes": _to_string, "bytes_to_bytes": _passthrough,
    "in_list": _in_list, "in_map": _in_map, "index_list": _index, "index_map": _index,
}  # fmt: skip
for _name in ("bool", "double", "int64", "uint64", "timestamp", "duration"):
    FORMULAS[f"{_name}_to_string"] = _to_string
for _name in ("int64", "uint64", "double", "bool", "timestamp", "duration"):
    FORMULAS[f"string_to_{_name}"] = _parse
for _name in ("less", "greater", "less_equals", "greater_equals"):
    FORMULAS[f"{_name}_string"] = _compare
    FORMULAS[f"{_name}_bytes"] = _compare


def formula_for(overload: str) -> Formula | None:
    if overload in FORMULAS:
        return FORMULAS[overload]
    if _SCALAR_OVERLOADS.fullmatch(overload) or overload.endswith("_with_tz"):
        return _scalar
    return None


class _Re2:
    """RE2's own count of a pattern's program (what its NFA steps through per byte)."""

    @staticmethod
    @lru_cache(maxsize=512)
    def program_size(pattern: str) -> int:
        import re2  # google-re2: the same engine cel-cpp runs

        try:
            return int(re2.compile(pattern).programsize)
        except Exception:
            return MAX_REGEX_PROGRAM  # CEL reports the bad pattern; never cheaper than this


# --- walking the AST ------------------------------------------------------------------------------


@dataclass
class Estimate:
    """A condition's bound: time and memory as polynomials over its argument fields' sizes
    (`fields`: the variables, "a:paths" for `args.paths`, "a:" for the whole of `args`),
    and the subexpression that costs the most (source offset), for the error message."""

    time: Poly
    memory: Poly
    fields: set[str] = field(default_factory=set)
    hot_position: int | None = None

    def worst(self, args_limit: float) -> tuple[float, float]:
        return worst(self.time, args_limit), worst(self.memory, args_limit)

    def at(self, sizes: Mapping[str, float]) -> tuple[float, float]:
        return self.time.at(sizes), self.memory.at(sizes)


@dataclass(frozen=True)
class InputLimits:
    """The largest values the API admits, in JSON bytes (see README, Configuration)."""

    args: float
    scalars: Mapping[str, float]  # agent, tool, title, role_hint, artifacts, ...


class _Walk:
    def __init__(self, checked, facts: Mapping[str, float], args_limit: float):
        self.args_limit = args_limit
        self.refs = checked.reference_map
        self.positions = checked.source_info.positions
        self.facts = facts  # top-level variables other than args: their largest size
        self.scopes: list[dict[str, Node]] = []
        self.guards: dict[str, Node] = {}
        self.pool_time = Poly()
        self.pool_memory = Poly()
        self.depth = 0
        self.hot: tuple[float, int | None] = (-1.0, None)
        self.fields: set[str] = set()

    def _note(self, expr, time: Poly) -> None:
        # The subexpression with the largest own cost, for the message.
        value = worst(time, self.args_limit)
        if value > self.hot[0]:
            self.hot = (value, self.positions.get(expr.id))

    def visit(self, expr) -> Node:
        kind = expr.WhichOneof("expr_kind")
        if kind == "const_expr":
            return self._constant(expr.const_expr)
        if kind == "ident_expr":
            return self._ident(expr.ident_expr.name)
        if kind == "select_expr":
            return self._select(expr)
        if kind == "call_expr":
            return self._call(expr)
        if kind == "list_expr":
            items = [self.visit(e) for e in expr.list_expr.elements]
            return self._aggregate(items, len(items))
        if kind == "struct_expr":
            items = []
            for entry in expr.struct_expr.entries:
                items += [self.visit(entry.map_key), self.visit(entry.value)]
            return self._aggregate(items, len(expr.struct_expr.entries))
        if kind == "comprehension_expr":
            return self._comprehension(expr)
        raise Unbounded("an expression this check does not know", self.positions.get(expr.id))

    def _constant(self, const) -> Node:
        which = const.WhichOneof("constant_kind")
        value = getattr(const, which) if which else None
        size = len(value) + 2 if isinstance(value, str | bytes) else 1
        if isinstance(value, str):
            size = len(value.encode()) + 2
        return Node(_const(size), _const(W_NODE), _const(0), literal=value)

    def _ident(self, name: str) -> Node:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name == "args":
            self.fields.add(ARGS)
            return Node(Poly.var(ARGS), _const(W_NODE), _const(0), path=ARGS)
        return Node(_const(self.facts.get(name, SCALAR)), _const(W_NODE), _const(0))

    def _args_path(self, expr) -> str | None:
        """ "a:<field>" when `expr` is args.<field> (or args["field"]) or below it."""
        kind = expr.WhichOneof("expr_kind")
        if kind == "select_expr":
            operand = expr.select_expr.operand
            if operand.WhichOneof("expr_kind") == "ident_expr" and self._is_args(operand):
                return ARGS + expr.select_expr.field
            return self._args_path(operand)
        if kind == "call_expr" and expr.call_expr.function == "_[_]":
            container, key = expr.call_expr.args
            if container.WhichOneof("expr_kind") == "ident_expr" and self._is_args(container):
                if key.WhichOneof("expr_kind") == "const_expr":
                    literal = key.const_expr.string_value
                    if key.const_expr.WhichOneof("constant_kind") == "string_value":
                        return ARGS + literal
                return None
            return self._args_path(container)
        return None

    def _is_args(self, ident_expr) -> bool:
        name = ident_expr.ident_expr.name
        return name == "args" and not any(name in scope for scope in self.scopes)

    def _guarded(self, path: str | None, node: Node) -> Node:
        if path is not None:
            self.fields.add(path)
            node = replace(node, size=Poly.var(path), path=path)
            if path in self.guards:
                g = self.guards[path]
                node = replace(node, string_size=g.string_size, count=g.count)
        return node

    def _select(self, expr) -> Node:
        sel = expr.select_expr
        if sel.test_only:  # has(x.f): a lookup
            operand = self.visit(sel.operand)
            return Node(_const(1), operand.time + W_NODE, operand.memory)
        path = self._args_path(expr)
        if path is not None:
            # A field of the request's arguments: looked up (converted once per request).
            return self._guarded(path, Node(Poly(), _const(W_NODE), _const(0)))
        operand = self.visit(sel.operand)
        return Node(operand.size, operand.time + W_NODE, operand.memory)

    def _aggregate(self, items: list[Node], count: int) -> Node:
        size = _const(1)
        time = _const(W_NODE + W_ELEM * count)
        memory = _const(M_VALUE + M_ELEM * count)
        for item in items:
            size, time, memory = size + item.size + 1, time + item.time, memory + item.memory
        return Node(size, time, memory, count=_const(count))

    def _call(self, expr) -> Node:
        call = expr.call_expr
        ref = self.refs.get(expr.id)
        if call.function == "_[_]" and (path := self._args_path(expr)) is not None:
            return self._guarded(path, Node(Poly(), _const(W_NODE), _const(0)))
        operands = ([call.target] if call.HasField("target") else []) + list(call.args)
        if call.function == "_&&_" and len(operands) == 2:
            left = self.visit(operands[0])
            saved = dict(self.guards)
            self.guards.update(self._guards_in(operands[0]))
            right = self.visit(operands[1])
            self.guards = saved
            nodes = [left, right]
        else:
            nodes = [self.visit(e) for e in operands]
        overloads = list(ref.overload_id) if ref is not None else []
        if not overloads:
            raise Unbounded(
                f"{call.function}() is not a function this check knows",
                self.positions.get(expr.id),
            )
        size, own_time, own_memory = Poly(), _const(W_NODE), _const(0)
        for overload in overloads:
            formula = formula_for(overload)
            if formula is None:
                raise Unbounded(
                    f"{call.function}() ({overload}) has no cost bound in this check",
                    self.positions.get(expr.id),
                )
            s, t, m = formula(nodes)
            size, own_time, own_memory = size.join(s), own_time.join(t + W_NODE), own_memory.join(m)
        self._note(expr, own_time)
        time, memory = own_time, own_memory
        for node in nodes:
            time, memory = time + node.time, memory + node.memory
        return Node(size, time, memory)

    def _guards_in(self, expr) -> dict[str, Node]:
        """`size(P) <= K`, `size(P) < K`, `P.size() <= K` (and K >= size(P), ...) in a
        conjunction: P has at most K elements, or 4K bytes as a string, where the right side
        of the `&&` is evaluated."""
        if expr.WhichOneof("expr_kind") != "call_expr":
            return {}
        call = expr.call_expr
        if call.function == "_&&_":
            found: dict[str, Node] = {}
            for operand in call.args:
                found.update(self._guards_in(operand))
            return found
        ops = {"_<=_": 0, "_<_": -1, "_>=_": 0, "_>_": -1}
        if call.function not in ops or len(call.args) != 2:
            return {}
        left, right = call.args
        if call.function in ("_>=_", "_>_"):
            left, right = right, left  # K >= size(P)
        if right.WhichOneof("expr_kind") != "const_expr":
            return {}
        if right.const_expr.WhichOneof("constant_kind") != "int64_value":
            return {}
        limit = right.const_expr.int64_value + ops[call.function]
        if left.WhichOneof("expr_kind") != "call_expr" or left.call_expr.function != "size":
            return {}
        sized = left.call_expr
        subject = sized.target if sized.HasField("target") else (sized.args or [None])[0]
        path = self._args_path(subject) if subject is not None else None
        if (
            path is None
            and subject is not None
            and subject.WhichOneof("expr_kind") == "ident_expr"
            and self._is_args(subject)
        ):
            path = ARGS
        if path is None or limit < 0:
            return {}
        # A value without a size (a number, absent) fails the guard with an error, and CEL
        # then evaluates the right side: it is at most a scalar.
        string_bound = _const(max(4 * limit + 2, SCALAR))
        count_bound = _const(max(limit, 0))
        return {path: Node(Poly(), Poly(), Poly(), string_size=string_bound, count=count_bound)}

    def _comprehension(self, expr) -> Node:
        comp = expr.comprehension_expr
        if comp.iter_var2:
            raise Unbounded("two-variable comprehensions", self.positions.get(expr.id))
        rng = self.visit(comp.iter_range)
        init = self.visit(comp.accu_init)
        self.depth += 1
        # The element, the accumulator and its element count, as variables of the body.
        x, acc, n_acc = f"~{self.depth}", f"@{self.depth}", f"#{self.depth}"
        here = _const(W_NODE)
        self.scopes.append(
            {
                comp.iter_var: Node(Poly.var(x), here, Poly()),
                comp.accu_var: Node(Poly.var(acc), here, Poly(), count=Poly.var(n_acc)),
            }
        )
        cond = self.visit(comp.loop_condition)
        step = self.visit(comp.loop_step)
        self.scopes.pop()
        grows, rest = step.size.split(lambda v: v == acc)
        if grows.terms and (set(grows.terms) != {((acc, 1),)} or grows.terms[((acc, 1),)] > 1):
            raise Unbounded(
                "an accumulator that grows faster than its input", self.positions.get(expr.id)
            )
        count = self._count(rng)
        if grows.terms:  # accu = accu + g(x): the sum of the increments, one element each
            final = init.size + self._sum(rest, x, rng.size, count)
            final_count = init.elements + count
        else:
            final = init.size.join(rest.subst(x, rng.size))
            final_count = init.elements.join(final * 0.5)

        def settled(p: Poly) -> Poly:
            return p.subst(acc, final).subst(n_acc, final_count)

        per_step_time = settled(cond.time + step.time + W_ITER)
        per_step_memory = settled(cond.memory + step.memory)
        time = self._sum(per_step_time, x, rng.size, count, pool="time")
        memory = self._sum(per_step_memory, x, rng.size, count, pool="memory")
        self.scopes.append({comp.accu_var: Node(final, here, Poly(), count=final_count)})
        result = self.visit(comp.result)
        self.scopes.pop()
        self.depth -= 1
        self._note(expr, time)
        return Node(
            result.size,
            rng.time + init.time + time + result.time,
            rng.memory + init.memory + memory + result.memory,
        )

    def _count(self, rng: Node) -> Poly:
        """The comprehension's element count: a guard's, a constant (at most the runtime's
        budget), or, for a range that depends on an outer iteration, half its size."""
        count = rng.elements
        value = count.constant
        if value is not None:
            return _const(min(value, ITERATION_BUDGET))
        if any(v.startswith(("~", "@", "#")) for v in count.variables()):
            return count
        return _const(ITERATION_BUDGET)

    def _sum(self, f: Poly, x: str, size: Poly, count: Poly, pool: str | None = None) -> Poly:
        """Σ f(xᵢ) over the iterations: the terms in x take the range's size; those in an
        outer iteration variable are paid `count` times; the rest (constants and argument
        sizes) too when `count` is a constant below the runtime's budget, else they join the
        pool, paid at most ITERATION_BUDGET times over the whole evaluation."""
        in_x, others = f.split(lambda v: v == x)
        total = in_x.subst(x, size)
        outer, pure = others.split(lambda v: v.startswith(("~", "@", "#")))
        total = total + outer * count
        n = count.constant
        if pool is None or (n is not None and n < ITERATION_BUDGET):
            return total + pure * count
        if pool == "time":
            self.pool_time = self.pool_time.join(pure)
        else:
            self.pool_memory = self.pool_memory.join(pure)
        return total


def estimate(serialized: bytes, limits: InputLimits) -> Estimate:
    """The bound of a compiled expression (`Expression.serialize()`); Unbounded if there is
    none."""
    checked = checked_ast(serialized)
    walk = _Walk(checked, limits.scalars, limits.args)
    root = walk.visit(checked.expr)
    time = root.time + walk.pool_time * ITERATION_BUDGET
    memory = root.memory + walk.pool_memory * ITERATION_BUDGET
    return Estimate(time, memory, walk.fields, walk.hot[1])


def json_size(value: Any) -> int:
    """A value's size as the estimate counts it: its compact JSON's length in bytes (an upper
    bound: numbers and strings count at least what they do in the body)."""
    import json

    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return 2**62  # not JSON: no bound (never the case for what the API admits)


def field_sizes(args: Mapping[str, Any], fields: Iterable[str]) -> dict[str, float]:
    """The sizes of a request's argument fields the estimate names."""
    sizes: dict[str, float] = {}
    for name in fields:
        if name == ARGS:
            sizes[name] = json_size(args)
        else:
            key = name[len(ARGS) :]
            sizes[name] = json_size(args[key]) if key in args else 1
    return sizes
