from approvals.models import Checkpoint
from approvals.transitions import checkpoint_decide
from audit.models import AuditEvent


def test_it_requests_and_approves(
    make_checkpoint, reviewer, broker, django_capture_on_commit_callbacks
):
    cp = make_checkpoint()
    assert cp.status == Checkpoint.Status.PENDING
    assert cp.current_role == "ops"
    with django_capture_on_commit_callbacks(execute=True):
        result = checkpoint_decide(cp.pk, reviewer, "approve")
    assert result.resolved
    cp.refresh_from_db()
    assert cp.status == "approved"
    verbs = list(AuditEvent.objects.values_list("verb", flat=True))
    assert verbs == [
        "run.started",
        "checkpoint.requested",
        "run.waiting",
        "decision.recorded",
        "checkpoint.approved",
    ]
    assert broker.calls("agents.tasks.resume_run") == [(str(cp.run_id),)]
