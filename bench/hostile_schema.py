"""Hostile `action.args_schema`: how long one decision (approve-with-edits, POST
/api/v1/checkpoints/{id}/decision/ through Django's full request stack) takes on the most
costly schema and arguments the bounds admit, and how long the same decision took before
(another commit's code, the catastrophic pattern at small n).

    .venv/bin/python bench/hostile_schema.py                   # this code, every case
    .venv/bin/python bench/hostile_schema.py --ref 8737c59     # that commit's code (git archive)

Each case is an agent's schema within HITL_ARGS_SCHEMA_MAX_BYTES / _DEPTH / _PATTERNS and
arguments within the API's 2 MiB body, sized so that checking them spends about the whole
HITL_ARGS_SCHEMA_CHECK_BUDGET (the worst the budget lets through), and one sized past it
(refused before the work is done). The reviewer sends the agent's arguments back with one
field edited, as the review page's form does. Printed per case: the create (the schema
check), the decision's worst and median of --repeat, what it answered, and the work units
the check spent (ns per unit: the calibration of approvals/schemas.py's costs).

A database of its own (a fresh SQLite file under var/bench/hostile_schema/), production mode.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _setup import add_common, configure

ROOT = Path(__file__).resolve().parents[1]
CATASTROPHIC = "^(a+)+$"
BODY = 2 * 1024 * 1024 - 4096  # what fits the API's body limit, with the request around it


def _random_ab(n: int) -> str:
    rng = random.Random(7)
    return "".join(rng.choice("ab") for _ in range(n))


def cases(budget: int, quick: bool) -> list[tuple[str, dict, dict]]:
    """(name, schema, arguments): the work of checking each is about `budget` units."""
    from approvals import schemas

    unit = schemas.REGEX_BYTES_PER_UNIT
    out = []
    # 1. The issue's pattern, the string as long as the body allows: linear on RE2.
    out.append(
        (
            "catastrophic pattern, 1 MB string",
            {"properties": {"label": {"pattern": CATASTROPHIC}, "note": {}}},
            {"label": "a" * 1_000_000 + "!", "note": ""},
        )
    )
    # 2. 99 patterns on one string, each RE2's slowest kind (a DFA that blows up: RE2 falls
    # back to its NFA), the string as long as the budget allows.
    heavy = "^(?:[ab]*a[ab]{120}b)*$"
    program = schemas.regex(heavy).programsize
    length = min(BODY, budget * unit // (99 * program))
    out.append(
        (
            f"99 DFA-hostile patterns x {length:,} byte string",
            {"properties": {"s": {"allOf": [{"pattern": heavy}] * 99}, "note": {}}},
            {"s": _random_ab(length), "note": ""},
        )
    )
    # 3. 99 patternProperties over an object with as many keys as the budget allows.
    keys = min(60_000, budget // (99 * (schemas.KEYWORD_COST + 40)))
    out.append(
        (
            f"99 patternProperties x {keys:,} keys",
            {
                "properties": {
                    "o": {
                        "patternProperties": {f"^(k+)+{i}$": {} for i in range(99)},
                        "additionalProperties": False,
                    },
                    "note": {},
                }
            },
            {"o": {f"k{i:08d}": 0 for i in range(keys)}, "note": ""},
        )
    )
    # 4. Many keywords applied to every item of the longest array (jsonschema's own cost).
    items = {
        "type": "integer",
        "minimum": 0,
        "maximum": 9,
        "multipleOf": 1,
        "not": {"type": "string"},
    }
    per_item = schemas.APPLY_COST * 2 + len(items) + 1 + 6 * schemas.KEYWORD_COST
    n = min(BODY // 2, budget // per_item)
    out.append(
        (
            f"6 keywords x {n:,} array items",
            {"properties": {"xs": {"items": items}, "note": {}}},
            {"xs": [0] * n, "note": ""},
        )
    )
    # 5. An items schema of 3,000 annotation keys (jsonschema loops over each, per item).
    wide = {f"x-{i:04d}": 0 for i in range(3_000)}
    n = min(BODY // 2, budget // (schemas.APPLY_COST + len(wide)))
    out.append(
        (
            f"3,000-key subschema x {n:,} items",
            {"properties": {"xs": {"items": wide}, "note": {}}},
            {"xs": [0] * n, "note": ""},
        )
    )
    # 6. $ref fan-out: 2^30 applications from a 2 KB schema; the budget stops it.
    fan: dict = {"$defs": {"d0": {"type": "integer", "minimum": 0}}}
    for i in range(1, 31):
        ref = {"$ref": f"#/$defs/d{i - 1}"}
        fan["$defs"][f"d{i}"] = {"allOf": [ref, ref]}
    fan["properties"] = {"n": {"$ref": "#/$defs/d30"}, "note": {}}
    out.append(("$ref fan-out (2^30 applications)", fan, {"n": 1, "note": ""}))
    # 7. uniqueItems over the most distinct objects that fit.
    n = min(BODY // 13, budget // (schemas.APPLY_COST + 2))
    out.append(
        (
            f"uniqueItems x {n:,} objects",
            {"properties": {"xs": {"uniqueItems": True}, "note": {}}},
            {"xs": [{"i": i} for i in range(n)], "note": ""},
        )
    )
    # 7b. The same arguments without a schema: what the rest of the decision costs.
    out.append((f"no schema, {n:,} objects", {}, {"xs": [{"i": i} for i in range(n)], "note": ""}))
    # 8. An enum as big as the schema allows, against every item.
    enum = [f"value-{i:05d}" for i in range(4_000)]
    n = min(BODY // 15, budget // (schemas.APPLY_COST + 1 + schemas.KEYWORD_COST + len(enum) + 1))
    out.append(
        (
            f"4,000-value enum x {n:,} items",
            {"properties": {"xs": {"items": {"enum": enum}}, "note": {}}},
            {"xs": [enum[-1]] * n, "note": ""},
        )
    )
    # 9. About the largest schema the bounds admit (61 KB, 99 patterns, 17 levels): the create.
    big: dict = {"type": "string"}
    for _ in range(8):
        big = {"type": "object", "properties": {"a": big}}
    big["properties"].update({f"p{i}": {"pattern": f"^(p+)+{i}$"} for i in range(99)})
    big["description"] = "d" * (60 * 1024 - len(json.dumps(big)))
    out.append(
        (
            "the largest schema (61 KB, 99 patterns, 17 levels)",
            big,
            {"p0": "p" * 100_000 + "!", "note": ""},
        )
    )
    if quick:
        out = out[:1]
    return out


def make_client(token: str):
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def post(client, path: str, body: dict):
    raw = json.dumps(body, separators=(",", ":"))
    started, cpu = time.perf_counter(), time.process_time()
    response = client.generic(
        "POST", f"/api/v1/{path}", raw, content_type="application/json", secure=True
    )
    return response, (time.perf_counter() - started, time.process_time() - cpu), len(raw)


def check_alone(schema: dict, args: dict) -> tuple[float, int | None]:
    """The schema check by itself: its CPU time, and the work units it spent (this code)."""
    try:
        from approvals import schemas
    except ImportError:  # the code before: no budget to read
        from approvals.rules import args_errors

        cpu = time.process_time()
        args_errors(schema, args)
        return time.process_time() - cpu, None
    from django.conf import settings

    budgets = []
    original = schemas._Budget.__init__

    def init(self, *a, **kw):
        original(self, *a, **kw)
        budgets.append(self)

    schemas._Budget.__init__ = init
    cpu = time.process_time()
    try:
        schemas.args_errors(schema, args)
    except Exception:  # refused: too costly
        pass
    finally:
        schemas._Budget.__init__ = original
    left = budgets[0].left if budgets else settings.HITL_ARGS_SCHEMA_CHECK_BUDGET  # no schema
    return time.process_time() - cpu, settings.HITL_ARGS_SCHEMA_CHECK_BUDGET - left


def answer(response) -> str:
    if response.status_code == 200:
        return "200 modify"
    body = response.json()
    errors = body.get("errors", {}).get("action", {})
    text = json.dumps(errors)[:70]
    return f"{response.status_code} {text}"


def run_case(agent, reviewer, name: str, schema: dict, args: dict, repeat: int) -> None:
    run = post(agent, "runs/", {"task": "bench"})[0].json()["id"]
    created, (create_s, _), size = post(
        agent,
        "checkpoints/",
        {"run": run, "title": name, "action": {"tool": "t", "args": args, "args_schema": schema}},
    )
    if created.status_code != 201:
        print(f"{name}: create {created.status_code} {created.content[:200]!r}")
        return
    cp = created.json()["id"]
    edited = {**args, "note": "edited"}
    walls, cpus, said = [], [], ""
    for _ in range(repeat):
        response, (wall, cpu), _ = post(
            reviewer,
            f"checkpoints/{cp}/decision/",
            {"outcome": "modify", "action": {"args": edited}},
        )
        walls.append(wall)
        cpus.append(cpu)
        said = answer(response)
        if response.status_code == 200:
            break
    check_cpu, units = check_alone(schema, edited)
    work = f"{units:,} ({check_cpu * 1e9 / units:.0f} ns/unit)" if units else "—"
    print(
        f"| {name} | {len(json.dumps(schema)):,} B | {size:,} B | {create_s * 1000:.0f} ms "
        f"| **{max(cpus) * 1000:.0f} ms** | {max(walls) * 1000:.0f} ms "
        f"| {check_cpu * 1000:.0f} ms | {work} | {said} |",
        flush=True,
    )


def catastrophic_before(agent, reviewer, ns: list[int], repeat: int) -> None:
    schema = {"properties": {"label": {"pattern": CATASTROPHIC}, "note": {}}}
    for n in ns:
        run_case(
            agent,
            reviewer,
            f"catastrophic pattern, n={n}",
            schema,
            {"label": "a" * n + "!", "note": ""},
            repeat,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common(parser)
    parser.add_argument("--ref", help="run another commit's code (the catastrophic pattern at --n)")
    parser.add_argument("--n", default="16,18,20,22,24", help="with --ref: string lengths")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the first case only")
    parser.add_argument("--before", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ref:
        tree = Path(tempfile.mkdtemp(prefix="hitl-bench-schema-"))
        archive = subprocess.run(
            ["git", "archive", args.ref], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        shutil.copy(__file__, tree / "bench" / "hostile_schema.py")
        script = str(tree / "bench" / "hostile_schema.py")
        command = [sys.executable, script, "--before", "--n", args.n, "--repeat", str(args.repeat)]
        if args.database_url:
            command += ["--database-url", args.database_url]
        try:
            subprocess.run(command, cwd=tree, check=True)
        finally:
            shutil.rmtree(tree, ignore_errors=True)
        return

    configure("hostile_schema", args)
    logging.getLogger("django.request").setLevel(logging.ERROR)  # the 400s are the point
    from django.conf import settings

    from agents.services import AGENT_KEYS
    from approvals.services import user_token_create
    from audit.events import Actor
    from tests.factories import AgentFactory, UserFactory

    agent = make_client(AGENT_KEYS.create(AgentFactory(slug="bench"), Actor.system("bench")))
    person = UserFactory(username="rita", roles=["ops"])
    reviewer = make_client(user_token_create(person, name="bench", scope="decide"))
    print(
        "| case | schema | request | create (wall) | decision, worst CPU | its wall time "
        "| the check alone, CPU | work units | answer |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    if args.before:
        catastrophic_before(agent, reviewer, [int(n) for n in args.n.split(",")], args.repeat)
        return
    budget = settings.HITL_ARGS_SCHEMA_CHECK_BUDGET
    for name, schema, case_args in cases(budget, args.quick):
        run_case(agent, reviewer, name, schema, case_args, args.repeat)


if __name__ == "__main__":
    main()
