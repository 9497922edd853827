"""Demo data for `make run`. Idempotent: a second run finds everything and changes nothing."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

from agents.models import Agent, AgentKey, Run
from agents.services import AGENT_KEYS, Ask, agent_record, ask
from agents.transitions import run_start
from approvals.models import Checkpoint, Policy
from approvals.policies import policy_publish, policy_save
from approvals.services import GROUP_FIELDS, group_record, user_authority_record
from audit import events as audit
from audit.events import Actor, AuditVerb

ROLES = ["ops", "code-review", "dba"]
DEMO_PASSWORD = "hitl-demo"
USERS = [
    # username, groups, is_superuser
    ("reviewer", ["ops"], False),
    ("coder", ["code-review"], False),
    ("dba", ["dba"], False),
    ("manager", [settings.HITL_MANAGERS_GROUP], False),
    ("admin", [], True),
]
POLICIES = [
    {
        "name": "Database changes need a DBA",
        "priority": 10,
        "match_tool": "sql_*",
        "stages": [{"role": "dba", "approvals": 1}],
        "timeout_seconds": 3600,
        "sla_seconds": 1800,
    },
    {
        "name": "Code changes need code review",
        "priority": 20,
        "match_tool": "apply_patch",
        "stages": [{"role": "code-review", "approvals": 1}],
        "timeout_seconds": 3600,
        "sla_seconds": 2400,
    },
    {
        "name": "Critical risk: ops, then a DBA",
        "priority": 5,
        "min_risk": "critical",
        "stages": [{"role": "ops", "approvals": 1}, {"role": "dba", "approvals": 1}],
        "timeout_seconds": 3600,
        "sla_seconds": 900,
        "expiry_action": "escalate",
        "escalation_role": "ops",
    },
    {
        # A deny list: decided at once, whatever the priorities (deny wins over allow).
        "name": "No DROP TABLE outside the migration window",
        "priority": 1,
        "match_tool": "sql_*",
        "condition": 'has(args.sql) && args.sql.lowerAscii().contains("drop table") '
        "&& !(hour >= 2 && hour < 4)",
        "outcome": "auto_reject",
        "reason": "DROP TABLE only runs in the 02:00-04:00 migration window; ask then.",
    },
    {
        # Shadow mode: records what it would approve; people still decide.
        "name": "Confident small log clean-ups (shadow)",
        "priority": 2,
        "match_agent": "log-janitor",
        "condition": "confidence != null && confidence >= 0.9 && risk_level <= 1",
        "outcome": "auto_approve",
        "reason": "the agent is confident and the risk is low",
        "shadow": True,
    },
    {
        # No timeout of its own: requests it routes follow HITL_DEFAULT_TIMEOUT.
        "name": "Everything else: ops",
        "priority": 1000,
        "stages": [{"role": "ops", "approvals": 1}],
        "sla_seconds": 900,
    },
]
DEMO_DIFF = """\
--- a/app/settings.py
+++ b/app/settings.py
@@ -1,5 +1,5 @@
 import os

-DEBUG = True
+DEBUG = os.environ.get("DEBUG") == "1"
 ALLOWED_HOSTS = ["*"]
 TIME_ZONE = "UTC"
"""
DEMO_REPLY = """\
Hello Ana,

Thanks for reaching out. You were charged **twice** for order #88213 on 2 November.
We have refunded one of the two charges (49.00 EUR); it shows on your statement within
5 business days.

Sorry for the trouble,
Support team
"""


class Command(BaseCommand):
    help = "Create demo roles, users, policies, an external demo agent and a few checkpoints."

    def add_arguments(self, parser):
        parser.add_argument("--quiet", action="store_true")
        parser.add_argument(
            "--reset-sandbox",
            action="store_true",
            help="recreate the built-in agents' sandbox data under var/sandbox",
        )

    @audit.atomic()
    def handle(self, *args, **opts):
        actor = Actor.system("seed_demo")
        User = get_user_model()
        groups, before = {}, {}
        for name in [*ROLES, settings.HITL_MANAGERS_GROUP]:
            groups[name], created = Group.objects.get_or_create(name=name)
            before[name] = None if created else audit.snapshot(groups[name], GROUP_FIELDS)
        self._grant_admin_permissions(groups)
        decide = Permission.objects.get(codename="decide_checkpoint")
        for name in ROLES:  # review roles; the managers group reads and never decides
            groups[name].permissions.add(decide)
        for name, group in groups.items():  # the roles and what they were granted, audited
            group_record(group, before[name], actor=actor)
        users = {}
        for username, group_names, superuser in USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "is_staff": True,
                    "is_superuser": superuser,
                    "email": f"{username}@example.com",
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
                user.groups.set([groups[g] for g in group_names])
                user_authority_record(user, None, actor=actor)
            users[username] = user
        for spec in POLICIES:
            if not Policy.objects.filter(name=spec["name"]).exists():
                policy = Policy(**spec)
                policy_save(policy, actor=actor)
                policy_publish(policy, user=None, actor=actor)

        agent, created = Agent.objects.get_or_create(
            slug="demo-agent",
            defaults={
                "name": "Demo agent",
                "kind": Agent.Kind.EXTERNAL,
                "description": "An external agent for trying the API.",
            },
        )
        if created:
            agent_record(agent, None, actor=actor)
        # A random key, minted once (only its hash is stored) and printed only then.
        key = ""
        if not AgentKey.objects.filter(agent=agent, name="demo").exists():
            key = AGENT_KEYS.create(agent, actor, name="demo")
        self._demo_checkpoints(agent, Actor.for_agent(agent))
        made = self._hosted_agents(actor, reset=opts.get("reset_sandbox", False))

        if not opts["quiet"]:
            self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
            for username, group_names, superuser in USERS:
                role = "superuser" if superuser else ", ".join(group_names)
                self.stdout.write(f"  {username:<9} {role}")
            if key:
                self.stdout.write("Demo agent 'demo-agent' API key (shown once, keep it):")
                self.stdout.write(f"  {key}")
            else:
                self.stdout.write(
                    "Demo agent 'demo-agent': its API key was printed when it was created. "
                    "Another one: .venv/bin/python manage.py createagent demo-agent"
                )
            root = settings.HITL_SANDBOX_ROOTS[0]
            self.stdout.write(
                f"Hosted agents log-janitor, code-patcher, sql-patcher work on {root}"
                + (f" (created: {', '.join(made)})" if made else "")
            )
            self.stdout.write(
                "  start one: admin -> Agents -> Start run, or "
                "`manage.py startrun log-janitor --user admin`"
            )

    def _hosted_agents(self, actor: Actor, *, reset: bool) -> list[str]:
        """The built-in agents, and sample data for them in the first sandbox root."""
        from pathlib import Path

        from agents.builtin import BUILTIN_AGENTS
        from agents.builtin.demo import ensure_sandbox
        from agents.runtime.agent import load_agent

        made = ensure_sandbox(Path(settings.HITL_SANDBOX_ROOTS[0]), reset=reset)
        for slug, runtime in BUILTIN_AGENTS.items():
            agent, created = Agent.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": slug.replace("-", " ").capitalize(),
                    "kind": Agent.Kind.HOSTED,
                    "runtime": runtime,
                },
            )
            if created:
                hosted = load_agent(agent)
                Agent.objects.filter(pk=agent.pk).update(
                    name=hosted.name,
                    description=hosted.description,
                    config=dict(hosted.default_config),
                )
                audit.record(
                    actor, AuditVerb.AGENT_CREATED, agent, {"slug": slug, "kind": "hosted"}
                )
        return made

    def _grant_admin_permissions(self, groups: dict[str, Group]) -> None:
        # Reviewers and managers see checkpoints, decisions, artifacts, runs in the admin;
        # what they may *do* is decided by the selectors and transitions, not these perms.
        view = Permission.objects.filter(
            codename__in=[
                "view_checkpoint",
                "view_decision",
                "view_artifact",
                "view_run",
                "view_agent",
                "view_auditevent",
                "view_policy",
                "view_runstep",
                "view_runevent",
                "view_deadletter",
            ]
        )
        for group in groups.values():
            group.permissions.add(*view)

    def _demo_checkpoints(self, agent: Agent, actor: Actor) -> None:
        demos = [
            (
                "demo-1",
                "Delete 3 log files older than 7 days",
                "delete_files",
                {"paths": ["/var/log/app/a.log", "/var/log/app/b.log", "/var/log/app/c.log"]},
                "medium",
                [],
            ),
            (
                "demo-2",
                "Apply patch: read DEBUG from the environment",
                "apply_patch",
                {"repo": "sample-repo", "patch": "artifact"},
                "high",
                [{"name": "settings.diff", "kind": "diff", "content": DEMO_DIFF}],
            ),
            (
                "demo-3",
                "UPDATE orders SET status='void' WHERE created < 2020",
                "sql_execute",
                {"sql": "UPDATE orders SET status='void' WHERE created < '2020-01-01'"},
                "high",
                [],
            ),
        ]
        from approvals.artifacts import ArtifactInput

        for key, title, tool, args, risk, artifacts in demos:
            if Checkpoint.with_drills.filter(agent=agent, idempotency_key=key).exists():
                continue
            run = Run.objects.filter(agent=agent, external_id=key).first() or run_start(
                agent=agent, task=title, actor=actor, external_id=key
            )
            ask(
                run,
                [
                    Ask(
                        title=title,
                        action={"tool": tool, "args": args},
                        risk=risk,
                        summary="Created by seed_demo so the queue has something in it.",
                        context={"request": title, "reasoning": ["Demo data."]},
                        expires_in=7 * 24 * 3600,
                        idempotency_key=key,
                        artifacts=[ArtifactInput(**a) for a in artifacts],
                    )
                ],
                actor=actor,
            )
        self._demo_review_and_question(agent, actor)

    def _demo_review_and_question(self, agent: Agent, actor: Actor) -> None:
        """A `review` checkpoint (the reviewer edits the agent's draft reply) and a `question`
        with answer options, both with a few timeline lines on their runs."""
        from agents.models import RunEvent
        from approvals.artifacts import ArtifactInput

        specs = [
            (
                "demo-4",
                "Review the reply to a customer refund request",
                Checkpoint.Kind.REVIEW,
                {
                    "tool": "send_email",
                    "args": {"to": "ana@example.com", "subject": "Your refund", "body": "artifact"},
                },
                "medium",
                [],
                [ArtifactInput(name="reply.md", kind="markdown", content=DEMO_REPLY)],
                [
                    "Read ticket #4512: refund requested for a double charge.",
                    "Found two identical charges of 49.00 EUR on 2026-11-02.",
                    "Drafted a reply promising a refund of one charge.",
                ],
            ),
            (
                "demo-5",
                "Which environment should the migration run in first?",
                Checkpoint.Kind.QUESTION,
                {},
                "low",
                [
                    {"value": "staging", "label": "Staging first"},
                    {"value": "production", "label": "Straight to production"},
                ],
                [],
                ["The migration adds a nullable column; it is backwards compatible."],
            ),
        ]
        for key, title, kind, action, risk, options, artifacts, steps in specs:
            if Checkpoint.with_drills.filter(agent=agent, idempotency_key=key).exists():
                continue
            run = Run.objects.filter(agent=agent, external_id=key).first() or run_start(
                agent=agent, task=title, actor=actor, external_id=key
            )
            for step in steps:
                RunEvent.objects.create(run=run, kind=RunEvent.Kind.STEP, message=step)
            ask(
                run,
                [
                    Ask(
                        title=title,
                        kind=kind,
                        action=action,
                        risk=risk,
                        options=options,
                        summary="Created by seed_demo so the queue has something in it.",
                        context={"request": title, "reasoning": steps},
                        expires_in=7 * 24 * 3600,
                        idempotency_key=key,
                        artifacts=artifacts,
                    )
                ],
                actor=actor,
            )
