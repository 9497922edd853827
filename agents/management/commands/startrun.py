"""Start a hosted run: `manage.py startrun <agent> "<task>" [--input JSON] [--user NAME]`.

Prints the run id as its last line, so scripts can `RUN=$(manage.py startrun ... | tail -1)`.
The run executes on the task cluster (`qcluster`, or `runportal`); `--inline` runs it in this
process instead, up to its first checkpoint or its end.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agents.models import Agent
from agents.runtime import InvalidRunInput, drive, start_hosted_run
from approvals.audit import Actor


class Command(BaseCommand):
    help = "Start a hosted agent run; prints the run id last."

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
            self.stdout.write(f"executed inline: {drive(run.pk)}")
        else:
            self.stdout.write(f"Started {agent.slug} run; it executes on the task cluster.")
        self.stdout.write(str(run.pk))
