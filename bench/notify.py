"""Notification latency: checkpoint created (its transaction committed) → the email accepted
by a real SMTP server and the Slack post received by a real HTTP server, both on 127.0.0.1,
with a real qcluster subprocess; and deadline → expired (the deadline timer in a real portald).

    .venv/bin/python bench/notify.py                                   # SQLite + ORM broker
    .venv/bin/python bench/notify.py --redis redis://127.0.0.1:6379/3  # SQLite + Redis broker
    .venv/bin/python bench/notify.py --database-url postgres://postgres@127.0.0.1:5432/DB

Targets: created → notified p99 ≤ 2 s with the ORM broker, ≤ 500 ms with Redis;
deadline → expired p99 ≤ 2 s. Requests are made one at a time (latency, not backlog).

    .venv/bin/python bench/notify.py --cost [--creates 200 --reviewers 8]

measures instead what the cluster spends on the notifications of a create: `--creates`
checkpoints made back to back for a role of `--reviewers` people emailed (no other channel),
then the time until every email reached the SMTP server; the cluster's CPU (its process group:
utime + stime, children included, less its idle rate measured before) and the django-q2 tasks
it ran, per create. Coalescing is off (HITL_NOTIFY_COALESCE_PER_MINUTE=0) unless
`--coalesce N`: the figure is what every email costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import Cluster, add_common, configure, percentiles

from tests.receivers import HttpReceiver, SmtpReceiver


def _stamp(into: list) -> None:
    into.append(time.time())


def _cpu_seconds(pgid: int) -> float:
    """CPU time of a process group: every live member's utime + stime, and its reaped
    children's (a recycled worker's time goes to its parent when reaped)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after ")": state, ppid, pgrp, ... utime=11, stime=12
            total += sum(int(f) for f in fields[11:15])
    return total / tick


def cost(args: argparse.Namespace) -> None:
    smtp = SmtpReceiver()
    os.environ["EMAIL_URL"] = smtp.url
    os.environ["HITL_NOTIFY_COALESCE_PER_MINUTE"] = str(args.coalesce)
    env = configure("notify-cost", args)
    env["HITL_Q_SAVE_LIMIT"] = "0"  # keep every task's row (no pruning): they are counted

    from django.db import transaction
    from django_q.models import Task

    from agents.models import Agent
    from agents.services import Ask, ask
    from agents.transitions import run_start
    from audit.events import Actor
    from tests.factories import UserFactory

    agent = Agent.objects.create(slug="bench", name="bench")
    for i in range(args.reviewers):
        UserFactory(username=f"reviewer{i}", roles=["ops"])
    actor = Actor.for_agent(agent)
    runs = [run_start(agent=agent, task=f"t{i}", actor=actor) for i in range(args.creates)]
    cluster = Cluster(env)
    try:
        cluster.wait_ready()
        time.sleep(2)  # the cluster settles (its start-up is not the creates' cost)
        idle_from, idle_cpu = time.monotonic(), _cpu_seconds(cluster.proc.pid)
        time.sleep(args.idle)
        idle_rate = (_cpu_seconds(cluster.proc.pid) - idle_cpu) / (time.monotonic() - idle_from)
        tasks_before = Task.objects.count()
        started, cpu_before = time.monotonic(), _cpu_seconds(cluster.proc.pid)
        for i, run in enumerate(runs):
            with transaction.atomic():
                ask(run, [Ask(title=f"cost {i}", action={"tool": "t", "args": {}})], actor=actor)
        created = time.monotonic()
        expected = args.creates * args.reviewers if not args.coalesce else None
        deadline = created + 600
        while True:
            count = len(smtp.mails)
            if expected is not None and count >= expected:
                break
            if expected is None and count and time.time() - smtp.mails[-1].received > 5:
                break  # coalescing: no more mail for 5 s
            if time.monotonic() > deadline:
                raise SystemExit(f"{count} of {expected} emails in 600 s")
            time.sleep(0.05)
        done = time.monotonic()
        cpu = _cpu_seconds(cluster.proc.pid) - cpu_before
        tasks = Task.objects.count() - tasks_before
    finally:
        cluster.stop()
        smtp.stop()
    from django.db import connection

    broker = "redis" if args.redis else f"orm (poll {args.poll})"
    window = done - started
    net = cpu - idle_rate * window
    print(
        f"{connection.vendor}, {broker} broker, {args.creates} creates × {args.reviewers} "
        f"email reviewers, coalescing {args.coalesce or 'off'}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"  creates took {created - started:.1f} s; all {len(smtp.mails)} emails in {window:.1f} s"
    )
    print(f"  SMTP connections: {smtp.connections}")
    print(f"  django-q2 tasks: {tasks} ({tasks / args.creates:.2f} per create)")
    print(
        f"  cluster CPU: {cpu:.2f} s, idle rate {idle_rate * 1000:.0f} ms/s; net "
        f"{net:.2f} s = {net / args.creates * 1000:.1f} ms per create "
        f"(gross {cpu / args.creates * 1000:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--deadlines", type=int, default=200)
    parser.add_argument("--redis", default="", help="use the Redis broker at this URL")
    parser.add_argument("--cost", action="store_true", help="cluster CPU per create (above)")
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--reviewers", type=int, default=8)
    parser.add_argument("--coalesce", type=int, default=0)
    parser.add_argument("--idle", type=float, default=5, help="seconds to measure idle CPU")
    args = parser.parse_args()
    if args.cost:
        return cost(args)
    smtp, slack = SmtpReceiver(), HttpReceiver()
    os.environ["EMAIL_URL"] = smtp.url
    env = configure("notify", args)

    from django.db import transaction

    from agents.models import Agent
    from agents.services import Ask, ask
    from agents.transitions import run_start
    from approvals.models import Checkpoint
    from audit.events import Actor
    from audit.models import AuditEvent
    from notifications.models import RoleChannel
    from tests.factories import UserFactory

    agent = Agent.objects.create(slug="bench", name="bench")
    for name in ("rita", "raj"):
        UserFactory(username=name, roles=["ops"])
    RoleChannel.objects.create(role="ops", kind="email")
    RoleChannel.objects.create(role="ops", kind="slack", url=slack.url)
    actor = Actor.for_agent(agent)

    def request(title: str, **fields) -> tuple[Checkpoint, float]:
        committed: list = []
        with transaction.atomic():
            transaction.on_commit(partial(_stamp, committed))  # first: runs at COMMIT
            run = run_start(agent=agent, task=title, actor=actor)
            cp = ask(
                run, [Ask(title=title, action={"tool": "t", "args": {}}, **fields)], actor=actor
            )
        return cp[0], committed[0]

    cluster, portald = Cluster(env), Cluster(env, "portald")
    try:
        cluster.wait_ready()
        email, slack_ms, both = [], [], []
        for i in range(args.requests):
            title = f"bench request {i}"
            _cp, at = request(title)
            deadline = time.monotonic() + 15
            while True:
                mails = [m for m in smtp.mails if title in m.subject]
                posts = [r for r in slack.requests if title.encode() in r.body]
                if len(mails) == 2 and posts:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{title}: {len(mails)} mails, {len(posts)} posts in 15 s")
                time.sleep(0.002)
            mail_at = max(m.received for m in mails)
            email.append((mail_at - at) * 1000)
            slack_ms.append((posts[0].received - at) * 1000)
            both.append((max(mail_at, posts[0].received) - at) * 1000)

        # deadline → expired: deadlines spread over ~20 s, portald's timer expires them
        pending = [
            request(f"bench deadline {i}", expires_in=2 + i * 20 // max(args.deadlines, 1))[0]
            for i in range(args.deadlines)
        ]
        last = max(cp.deadline for cp in pending)
        deadline = time.monotonic() + (last.timestamp() - time.time()) + 30
        ids = [str(cp.pk) for cp in pending]
        while AuditEvent.objects.filter(verb="checkpoint.expired", target_id__in=ids).count() < len(
            ids
        ):
            if time.monotonic() > deadline:
                raise SystemExit("not every deadline expired within 30 s")
            time.sleep(0.05)
        expired_at = dict(
            AuditEvent.objects.filter(verb="checkpoint.expired", target_id__in=ids).values_list(
                "target_id", "at"
            )
        )
        late = [(expired_at[str(cp.pk)] - cp.deadline).total_seconds() * 1000 for cp in pending]
    finally:
        cluster.stop()
        portald.stop()
        smtp.stop()
        slack.stop()
    from django.db import connection

    broker = "redis" if args.redis else f"orm (poll {args.poll})"
    print(f"{connection.vendor}, {broker} broker, {args.requests} requests, one at a time:")
    print(f"  created → email accepted (both recipients): {percentiles(email)}")
    print(f"  created → Slack post received:              {percentiles(slack_ms)}")
    print(f"  created → both:                             {percentiles(both)}")
    print(f"  deadline → expired ({len(late)} deadlines):   {percentiles(late)}")


if __name__ == "__main__":
    main()
