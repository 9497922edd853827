"""Condition cost: the most expensive conditions the save-time check admits, evaluated on the
largest request the API admits, and what each really costs.

    .venv/bin/python bench/conditions.py              # every candidate, 3 runs each
    .venv/bin/python bench/conditions.py --only regex --runs 5

For each family of expensive condition (RE2's NFA, string growth, a quadratic `map`, nested
comprehensions, a long substring search, split/join) the bench finds the largest parameter (a
guard `size(args.x) <= K`, a needle's length) that
`approvals.policies.conditions.check_condition` still admits under the configured limits
(HITL_CONDITION_MAX_COST / _MAX_MEMORY), builds the worst input for it within the body limit
(HITL_API_MAX_BODY_BYTES), and evaluates it once per run in a fresh process: the time of
`Condition.evaluate` and the process's peak memory growth during it. The request's arguments
are converted into CEL before the clock starts (the activation caches that once per request for
every condition); `first-touch` measures that conversion alone for the worst body (a list of a
million numbers).

Also prints each candidate's static bound, to compare the model with the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("HITL_ENV_FILE", "")
    import django

    django.setup()


NFA = "(a|b)*a(a|b){20}c"  # RE2's DFA gives up on it: every byte steps the NFA
NEEDLE = "a" * 10_000


def candidates(body: int) -> dict[str, dict]:
    """name → the condition for parameter k, the worst arguments for it, k's range."""
    rnd = random.Random(7)
    filler = body - 64  # the arguments' JSON within the body

    def ab(n: int) -> str:
        return "".join(rnd.choice("ab") for _ in range(n))

    return {
        "regex": {
            "condition": lambda k: f'size(args.s) <= {k} && args.s.matches("{NFA}")',
            "args": lambda k: {"s": ab(min(k, filler))},
        },
        "replace": {
            "condition": lambda k: (
                f'size(args.s) <= {k} && args.s.replace("a", "aaaaaaaa").size() > 0'
            ),
            "args": lambda k: {"s": "a" * min(k, filler)},
        },
        "map": {
            "condition": lambda k: f"size(args.l) <= {k} && args.l.map(x, x).size() > 0",
            "args": lambda k: {"l": list(range(min(k, filler // 8)))},
        },
        "nested": {
            "condition": lambda k: (
                f"size(args.l) <= {k} && args.l.exists(x, args.l.exists(y, x == y + 100000000))"
            ),
            # 99 x 99 iterations: the most the runtime runs before its budget stops it
            "args": lambda k: {"l": list(range(min(k, 99)))},
        },
        "contains": {
            # a needle of k bytes searched in every string of a 2 MiB list: a byte search
            # compares up to the needle's length at each position
            "condition": lambda k: f'args.l.all(x, !x.contains("{NEEDLE[: k - 1]}b"))',
            "args": lambda k: {"l": ["a" * 100_000] * (filler // 100_004)},
            "max": 3900,  # a condition is at most 4,000 characters
        },
        "split-join": {
            "condition": lambda k: f'size(args.s) <= {k} && args.s.split("").join(",") != ""',
            "args": lambda k: {"s": "a" * min(k, filler)},
        },
        "suggested": {
            # what the review page suggests for a standing rule, on 2 MiB of paths
            "condition": lambda k: (
                'agent == "bot" && tool == "delete_files" && '
                "args.days <= 7 && size(args.paths) <= 20 && "
                'args.paths.all(p, p.startsWith("/var/log/") && !p.contains(".."))'
            ),
            "args": lambda k: {"days": 1, "paths": ["/var/log/" + "a" * 100_000] * 20},
            "max": 1,
        },
    }


def largest_admitted(make, high: int) -> int:
    """The largest k in [1, high] whose condition the save-time check admits (admission is
    monotonic in k); 0 if none."""
    from approvals.policies.conditions import compile_condition

    def admitted(k: int) -> bool:
        return compile_condition(make(k)).admitted

    if not admitted(1):
        return 0
    low = 1
    while low < high:
        mid = (low + high + 1) // 2
        if admitted(mid):
            low = mid
        else:
            high = mid - 1
    return low


def run_one(name: str, k: int) -> dict:
    """In this (fresh) process: evaluate the candidate once; time and peak memory growth."""
    from django.conf import settings
    from django.utils import timezone

    from approvals.policies.conditions import compile_condition, request_facts

    spec = candidates(settings.HITL_API_MAX_BODY_BYTES)[name]
    condition = compile_condition(spec["condition"](k))
    args = spec["args"](k)
    body = len(json.dumps({"action": {"tool": "delete_files", "args": args}}))
    facts = request_facts(
        agent_slug="bot", action={"tool": "delete_files", "args": args}, kind="approval",
        risk="low", now=timezone.now(),
    )  # fmt: skip
    # Convert the arguments first (once per request, whatever the conditions).
    touch = compile_condition(" && ".join(f"has(args.{f})" for f in args) or "true")
    touch.evaluate(facts)
    for f in args:
        compile_condition(f"size(args.{f}) >= 0").evaluate(facts)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = condition.evaluate(facts)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {
        "seconds": seconds, "peak_mib": peak / 1024, "result": result, "body": body,
        "bound_time": condition.cost.worst_time, "bound_memory": condition.cost.worst_memory,
        "skipped": facts.skipped,
    }  # fmt: skip


def first_touch() -> dict:
    """Converting the worst body's arguments into CEL: a list of ~1,000,000 numbers."""
    from django.conf import settings
    from django.utils import timezone

    from approvals.policies.conditions import compile_condition, request_facts

    n = (settings.HITL_API_MAX_BODY_BYTES - 64) // 2
    args = {"l": [0] * n}
    facts = request_facts(
        agent_slug="bot", action={"tool": "t", "args": args}, kind="approval", risk="low",
        now=timezone.now(),
    )  # fmt: skip
    condition = compile_condition("size(args.l) > 0")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    condition.evaluate(facts)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                             - before) / 1024, "elements": n}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="one candidate (regex, replace, map, ...)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--first-touch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup()
    if args.child:
        print(json.dumps(run_one(args.child[0], int(args.child[1]))))
        return
    if args.first_touch:
        print(json.dumps(first_touch()))
        return
    from django.conf import settings

    body = settings.HITL_API_MAX_BODY_BYTES
    print(
        f"limits: HITL_CONDITION_MAX_COST={settings.HITL_CONDITION_MAX_COST:,} "
        f"HITL_CONDITION_MAX_MEMORY={settings.HITL_CONDITION_MAX_MEMORY:,} "
        f"HITL_API_MAX_BODY_BYTES={body:,}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'candidate':<11} {'k':>9} {'bound (units)':>14} {'bound (MiB)':>11} "
          f"{'time (ms), each run':<30} {'peak (MiB)':>10}")  # fmt: skip
    worst = (0.0, "")
    for name, spec in candidates(body).items():
        if args.only and name != args.only:
            continue
        k = largest_admitted(spec["condition"], spec.get("max", body))
        if k == 0:
            print(f"{name:<11} nothing admitted")
            continue
        runs = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, str(k)],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )  # fmt: skip
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        times = [r["seconds"] * 1000 for r in runs]
        peak = max(r["peak_mib"] for r in runs)
        first = runs[0]
        print(
            f"{name:<11} {k:>9,} {first['bound_time']:>14,.0f} "
            f"{first['bound_memory'] / 2**20:>11.1f} "
            f"{', '.join(f'{t:.1f}' for t in times):<30} {peak:>10.1f}"
        )
        if first["skipped"]:
            print(f"   (not evaluated: {first['skipped']})")
        if max(times) > worst[0]:
            worst = (max(times), name)
    if not args.only:
        touch = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--first-touch"],
                capture_output=True, text=True, check=True, cwd=ROOT,
            ).stdout.strip().splitlines()[-1]
        )  # fmt: skip
        print(
            f"first-touch: converting {touch['elements']:,} numbers of a request's arguments "
            f"{touch['seconds'] * 1000:.0f} ms, peak +{touch['peak_mib']:.0f} MiB "
            "(once per request)"
        )
    if worst[1]:
        print(f"most expensive admitted: {worst[1]}, {worst[0]:.1f} ms")


if __name__ == "__main__":
    main()
