"""The peer a Python team would pick instead: Prefect 3, the same workload shape as the portal's,
measured in the same run so that the lead is a ratio, not two numbers from two days.

Prefect is an optional extra, never installed into the portal's venv. Once:

    python3 -m venv /tmp/prefect-venv
    /tmp/prefect-venv/bin/pip install 'prefect>=3,<4' asyncpg

Then, from the repository root:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/peers/prefect.py [--flows 100] [--samples 50] [--cluster] \\
        [--prefect-python /tmp/prefect-venv/bin/python]

What runs (one after the other, the load average printed before each):
  portal   this branch as deployed for the API (bench/api.py's configuration: granian 2 workers
           x 4 threads, uvicorn for long-poll, the sequencer; --cluster adds a django-q2
           cluster), on its own database `hitl_bench_peers`, ports 18560-18561: creates at 16
           clients for --duration s (an agent asking = a paused item), then decision -> the
           waiting agent's long-poll returns, one at a time, --samples times (bench/api.py's
           `closed` and `wake_latency`)
  prefect  `prefect server start` on 127.0.0.1:18550 with its database on PostgreSQL
           (`prefect_bench`, recreated, dropped after); --flows async flows started at once in
           one process, each calling `pause_flow_run(wait_for_input=Decision)`; paused items/s =
           flows / time until all are Paused on the server; then, one at a time, --samples of
           them resumed through the API (`resume_flow_run` with the input) and timed from the
           resume call's return to the flow's next line; the rest resumed together at the end.

A paused Prefect flow learns of its resume by polling the server every `poll_interval` s (an
int, default 10; --poll, default 1, the smallest): that interval bounds its resume latency.
The portal's waiter is woken by PostgreSQL NOTIFY at the decision's commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PREFECT_PORT = 18550
PORTAL_PORT = 18560
PREFECT_DB = "prefect_bench"
CLK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def tree_cpu(root: int) -> float:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
        todo += children.get(pid, [])
    return total / CLK


# --- the Prefect side: runs under the Prefect venv's python ----------------------------------


def prefect_side(flows: int, samples: int, poll: int, server_pid: int) -> None:
    # This file is named prefect.py: keep it from shadowing the package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    import asyncio

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.context import FlowRunContext
    from prefect.flow_runs import apause_flow_run
    from prefect.input import RunInput

    class Decision(RunInput):
        outcome: str

    run_ids: dict[int, str] = {}
    resumed: dict[int, float] = {}

    @flow(name="review", persist_result=False, log_prints=False)
    async def review(i: int) -> str:
        run_ids[i] = str(FlowRunContext.get().flow_run.id)
        decision = await apause_flow_run(wait_for_input=Decision, timeout=1800, poll_interval=poll)
        resumed[i] = time.time()
        return decision.outcome

    async def paused_count(client) -> int:
        state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
        return await client.count_flow_runs(flow_run_filter=FlowRunFilter(state=state))

    async def main() -> dict:
        async with get_client() as client:
            cpu0, me0 = tree_cpu(server_pid), tree_cpu(os.getpid())
            t0 = time.time()
            tasks = [asyncio.ensure_future(review(i)) for i in range(flows)]
            while await paused_count(client) < flows:
                if any(t.done() for t in tasks):
                    raise SystemExit(f"a flow ended before pausing: {tasks[0]}")
                await asyncio.sleep(0.05)
            paused_s = time.time() - t0
            server_cpu = tree_cpu(server_pid) - cpu0
            runner_cpu = tree_cpu(os.getpid()) - me0
            await asyncio.sleep(2)  # every flow in its polling loop
            after_call, after_send = [], []
            for i in range(samples):
                sent = time.time()
                await client.resume_flow_run(run_ids[i], run_input={"outcome": "approve"})
                returned = time.time()
                while i not in resumed:
                    await asyncio.sleep(0.002)
                after_call.append(max(0.0, resumed[i] - returned))
                after_send.append(resumed[i] - sent)
            for i in range(samples, flows):
                await client.resume_flow_run(run_ids[i], run_input={"outcome": "approve"})
            outcomes = await asyncio.gather(*tasks)
            return {
                "flows": flows,
                "paused_s": paused_s,
                "paused_per_s": flows / paused_s,
                "cpu_per_paused_ms": {
                    "server": server_cpu / flows * 1000,
                    "flows": runner_cpu / flows * 1000,
                },
                "resume_p50": pct(after_call, 50) * 1000,
                "resume_p99": pct(after_call, 99) * 1000,
                "resume_send_p99": pct(after_send, 99) * 1000,
                "samples": samples,
                "completed": sum(1 for o in outcomes if o == "approve"),
                "poll": poll,
            }

    print(json.dumps(asyncio.run(main())), flush=True)


# --- the orchestrator: the portal's venv ------------------------------------------------------


def admin_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def recreate(db: str, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {db}")


def run_prefect(args) -> dict:
    from urllib.parse import urlparse

    import httpx

    recreate(PREFECT_DB)
    pg = urlparse(admin_url())
    home = Path("/tmp/prefect-bench-home")
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DJANGO_"))} | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://{pg.username or 'postgres'}@{pg.hostname or '127.0.0.1'}:"
            f"{pg.port or 5432}/{PREFECT_DB}"
        ),
        "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": "",
    }
    prefect_bin = str(Path(args.prefect_python).parent / "prefect")
    server = subprocess.Popen(
        [prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(PREFECT_PORT)],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit(f"prefect server exited with {server.returncode}")
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("prefect server did not start within 120 s")
            time.sleep(0.5)
        print(f"  server up; load average {loadavg()}", flush=True)
        side = subprocess.run(
            [
                args.prefect_python,
                str(Path(__file__).resolve()),
                "--prefect-side",
                "--flows",
                str(args.flows),
                "--samples",
                str(args.samples),
                "--poll",
                str(args.poll),
                "--server-pid",
                str(server.pid),
            ],
            env=env,
            cwd="/tmp",
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if side.returncode:
            raise SystemExit(f"the Prefect side failed:\n{side.stderr[-3000:]}")
        return json.loads(side.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        recreate(PREFECT_DB, drop_only=True)


def run_portal(args) -> dict:
    import asyncio

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))  # bench/api.py, not the `api` app
    import api as bench

    cfg = bench.Config(
        "peers", "portal", ROOT, "granian", True, "hitl_bench_peers", threads=4, workers=2
    )
    bench.prepare(cfg, admin_url(), 16, 8)
    try:
        bench.start(cfg, PORTAL_PORT, 2)
        if args.cluster:
            manage = str(ROOT / "manage.py")
            cfg.procs.append(subprocess.Popen([sys.executable, manage, "qcluster"], env=cfg.env))
        time.sleep(3)
        roots = [p.pid for p in cfg.procs]
        cpu0 = sum(tree_cpu(pid) for pid in roots)
        create = asyncio.run(bench.closed(cfg.port, 16, args.duration, bench.create_request(cfg)))
        n = create["rps"] * args.duration
        cpu = (sum(tree_cpu(pid) for pid in roots) - cpu0) / max(1, n) * 1000
        wake = asyncio.run(bench.wake_latency(cfg, args.samples, 0))
    finally:
        bench.stop(cfg)
        recreate(cfg.db, drop_only=True)
    return {"create": create, "wake": wake, "cpu_per_create_ms": cpu}


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=100)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--poll", type=int, default=1, help="Prefect's poll_interval (s)")
    parser.add_argument("--duration", type=float, default=10, help="s of portal creates")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also run a django-q2 cluster beside the portal (ORM broker; its notification "
        "emails to the 8 reviewers go to EMAIL_URL: unreachable, they fail and are retried)",
    )
    parser.add_argument("--prefect-python", default="/tmp/prefect-venv/bin/python")
    parser.add_argument("--prefect-side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--json", default="", help="write the results here")
    args = parser.parse_args()
    if args.prefect_side:
        prefect_side(args.flows, args.samples, args.poll, args.server_pid)
        return
    if not Path(args.prefect_python).exists():
        raise SystemExit(f"{args.prefect_python} not found: see this file's docstring")
    print(f"{os.cpu_count()} CPUs, PostgreSQL; load average {loadavg()}", flush=True)
    print("\nportal", flush=True)
    portal = run_portal(args)
    c, w = portal["create"], portal["wake"]
    print(
        f"  creates (16 clients): {c['rps']:.0f}/s, p50 {c['p50']:.1f} ms, p99 {c['p99']:.1f} ms, "
        f"CPU {portal['cpu_per_create_ms']:.1f} ms/create (servers + sequencer"
        f"{' + cluster' if args.cluster else ''}), "
        f"errors {c['errors'] or 0}\n"
        f"  decision -> wait returns: p50 {w['p50']:.1f} ms, p99 {w['p99']:.1f} ms "
        f"({w['n']} samples); load average {loadavg()}",
        flush=True,
    )
    print(f"\nprefect ({args.flows} flows, poll_interval {args.poll} s)", flush=True)
    prefect = run_prefect(args)
    p = prefect
    print(
        f"  paused: {p['paused_per_s']:.1f} items/s ({p['flows']} in {p['paused_s']:.1f} s; CPU "
        f"{p['cpu_per_paused_ms']['server']:.0f} ms server + "
        f"{p['cpu_per_paused_ms']['flows']:.0f} ms flows per item)\n"
        f"  resume -> flow continues: p50 {p['resume_p50']:.0f} ms, p99 {p['resume_p99']:.0f} ms "
        f"({p['samples']} samples; {p['completed']} flows completed); load average {loadavg()}",
        flush=True,
    )
    print(
        f"\nportal / Prefect: paused items/s x{c['rps'] / p['paused_per_s']:.0f}, "
        f"resume p50 x{p['resume_p50'] / w['p50']:.0f} faster, "
        f"p99 x{p['resume_p99'] / w['p99']:.0f} faster",
        flush=True,
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"portal": portal, "prefect": prefect}, indent=2))


if __name__ == "__main__":
    main()
