from django.core.management import call_command

from approvals.models import Artifact, Checkpoint
from audit.models import AuditEvent


def test_it_seeds_every_kind_of_checkpoint_idempotently(db):
    call_command("seed_demo", "--quiet")
    counts = (Checkpoint.objects.count(), Artifact.objects.count(), AuditEvent.objects.count())
    call_command("seed_demo", "--quiet")
    assert (
        Checkpoint.objects.count(),
        Artifact.objects.count(),
        AuditEvent.objects.count(),
    ) == counts
    kinds = set(Checkpoint.objects.values_list("kind", flat=True))
    assert kinds == {"approval", "question", "review"}
    question = Checkpoint.objects.get(kind="question")
    assert [o["value"] for o in question.options] == ["staging", "production"]
    assert question.run.events.count() == 1


def test_the_demo_catch_all_policy_follows_the_default_timeout(db, settings):
    """HITL_DEFAULT_TIMEOUT=60 make run must take effect: the demo data does not override it."""
    from agents.models import Agent
    from agents.services import Ask, ask
    from agents.transitions import run_start
    from audit.events import Actor

    settings.HITL_DEFAULT_TIMEOUT = 60
    call_command("seed_demo", "--quiet")
    agent = Agent.objects.get(slug="demo-agent")
    run = run_start(agent=agent, task="t", actor=Actor.for_agent(agent))
    (cp,) = ask(run, [Ask(title="t", action={"tool": "anything"})], actor=Actor.for_agent(agent))
    assert cp.policy.name == "Everything else: ops"
    assert abs((cp.deadline - cp.created_at).total_seconds() - 60) < 1
