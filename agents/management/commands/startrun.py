"""Start a hosted run: `manage.py startrun <agent> "<task>" [--input JSON] [--user NAME]`.

The run executes on the task cluster (`qcluster`, or `runportal`); the command waits up to
`--wait` seconds for it to pause or finish and shows where it stands: the checkpoints it waits
on (title, the proposed action, the review page), or its outcome. `--inline` runs it in this
process instead, up to its first checkpoint or its end. Prints the run id as its last line,
so scripts can `RUN=$(manage.py startrun ... | tail -1)`; `--json` prints one JSON object.
"""

from __future__ import annotations

import json
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_q.conf import Conf

from agents.models import Agent, Run
from agents.runtime import InvalidRunInput, drive, start_hosted_run
from approvals.models import Checkpoint
from approvals.representations import review_url
from audit.events import Actor


class Command(BaseCommand):
    help = (
        "Start a hosted agent run and show what it waits on (the checkpoints to review); "
        "prints the run id last (or one JSON object with --json)."
    )

    def add_arguments(self, parser):
        parser.add_argument("agent", help="the agent's slug, e.g. log-janitor")
        parser.add_argument(
            "task", nargs="?", default="", help="the task (default: the agent's default task)"
        )
        parser.add_argument("--input", default="", help='a JSON object, e.g. \'{"path": "logs"}\'')
        parser.add_argument(
            "--user",
            default="",
            help="who asks (four-eyes: they cannot approve this run's checkpoints)",
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="execute here instead of enqueueing for the cluster",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=20.0,
            help="seconds to wait for the cluster to reach a pause or the end (default 20)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **opts):
        agent = Agent.objects.filter(slug=opts["agent"]).first()
        if agent is None:
            hosted = (
                ", ".join(
                    Agent.objects.filter(kind=Agent.Kind.HOSTED).values_list("slug", flat=True)
                )
                or "none"
            )
            raise CommandError(f"no agent {opts['agent']!r} (hosted agents: {hosted})")
        user = None
        if opts["user"]:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"no user {opts['user']!r}")
        actor = Actor.for_user(user) if user else Actor.system("startrun")
        try:
            run = start_hosted_run(
                agent=agent,
                task=opts["task"],
                input=opts["input"] or None,
                created_by=user,
                actor=actor,
            )
        except InvalidRunInput as exc:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
        if opts["inline"]:
            # The enqueued copy finds the run already handled (lease, status) and does nothing.
            drive(run.pk)
        elif not Conf.SYNC:
            self._wait_for_pause(run.pk, opts["wait"])
        run = Run.objects.select_related("agent").get(pk=run.pk)
        waiting_on = list(
            run.checkpoints.filter(status=Checkpoint.Status.PENDING).order_by("created_at")
        )
        if opts["json"]:
            self.stdout.write(json.dumps(self._as_json(run, waiting_on), default=str))
            return
        self._describe(run, waiting_on)
        self.stdout.write(str(run.pk))

    @staticmethod
    def _wait_for_pause(run_id, seconds: float) -> None:
        deadline = time.monotonic() + max(seconds, 0)
        while time.monotonic() < deadline:
            if Run.objects.filter(pk=run_id).exclude(status=Run.Status.RUNNING).exists():
                return
            time.sleep(0.2)

    def _describe(self, run: Run, waiting_on: list[Checkpoint]) -> None:
        if waiting_on:
            self.stdout.write(f"Run of {run.agent.slug} is waiting for a human:")
            for cp in waiting_on:
                action = cp.action or {}
                self.stdout.write(f"  {cp.title}  [{cp.risk} risk, role {cp.current_role}]")
                if action.get("tool"):
                    args = json.dumps(action.get("args", {}), ensure_ascii=False)
                    self.stdout.write(f"    proposes {action['tool']}({args[:300]})")
                self.stdout.write(f"    review: {review_url(cp.pk)}")
        elif run.status == Run.Status.RUNNING:
            self.stdout.write(
                f"Run of {run.agent.slug} is running on the task cluster (is `qcluster` or "
                "`make run` up?); follow it in the admin under Runs."
            )
        else:
            self.stdout.write(f"Run of {run.agent.slug} {run.status}: {run.error or ''}".rstrip())

    @staticmethod
    def _as_json(run: Run, waiting_on: list[Checkpoint]) -> dict:
        return {
            "run": str(run.pk),
            "agent": run.agent.slug,
            "status": run.status,
            "error": run.error,
            "waiting_on": [
                {
                    "id": str(cp.pk),
                    "title": cp.title,
                    "risk": cp.risk,
                    "role": cp.current_role,
                    "action": cp.action,
                    "review_url": review_url(cp.pk),
                }
                for cp in waiting_on
            ],
        }
