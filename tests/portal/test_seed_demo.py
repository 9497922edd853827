from django.core.management import call_command

from approvals.models import Artifact, AuditEvent, Checkpoint


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
