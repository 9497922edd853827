"""`review` checkpoints: the reviewer edits the agent's draft itself. The edited version is
stored beside the original with the diff, shown in the audit, and returned to the agent."""

from __future__ import annotations

import pytest

from approvals.artifacts import ArtifactEdit
from approvals.models import Artifact
from approvals.signals import checkpoint_resolved
from approvals.transitions import ArtifactInput, checkpoint_decide
from audit.models import AuditEvent
from core.exceptions import InvalidInput
from tests.portal.helpers import decide_url, review_url

EDITED = "Hello Ana,\n\nWe refunded **one** charge of 49.00 EUR.\n\nSorry!\n"


def test_it_stores_the_reviewers_version_of_the_draft(client_for, reviewer, review_cp):
    original = review_cp.artifacts.get()
    c = client_for(reviewer)
    page = c.get(review_url(review_cp)).content.decode()
    assert f'name="artifact_{original.pk}"' in page  # an editor for the draft
    field = f"artifact_{original.pk}"
    first = c.post(decide_url(review_cp), {"outcome": "modify", field: EDITED})
    assert first.status_code == 200 and "draft → your version" in first.content.decode()
    assert Artifact.objects.count() == 1
    confirm = first.context["form"].data["confirm"]

    received = []

    def on_resolved(sender, checkpoint, **kwargs):
        received.append(checkpoint.final_action)

    checkpoint_resolved.connect(on_resolved)
    try:
        done = c.post(
            decide_url(review_cp), {"outcome": "modify", field: EDITED, "confirm": confirm}
        )
    finally:
        checkpoint_resolved.disconnect(on_resolved)
    assert done.status_code == 302
    review_cp.refresh_from_db()
    edited = Artifact.objects.get(edited_from=original)
    assert edited.checkpoint == review_cp and edited.inline == EDITED
    assert edited.name == original.name and edited.kind == "markdown"
    # The original is untouched.
    original.refresh_from_db()
    assert "49.00" not in original.inline
    # What the agent gets back: the approved action names the edited draft.
    assert review_cp.status == "approved"
    final = review_cp.final_action
    assert final["edited_artifacts"] == [
        {"name": "reply.md", "original": original.ref, "ref": edited.ref, "sha256": edited.sha256}
    ]
    assert final["args"] == {"to": "ana@example.com", "body": "artifact"}
    assert received == [final]
    # The audit has the diff.
    event = AuditEvent.objects.get(target_id=str(review_cp.pk), verb="decision.recorded")
    [logged] = event.data["edited_artifacts"]
    assert (
        logged["ref"] == edited.ref
        and "+We refunded **one** charge of 49.00 EUR." in logged["diff"]
    )
    # The page shows the edit afterwards.
    after = c.get(review_url(review_cp)).content.decode()
    assert "Reviewer edits" in after and "49.00 EUR" in after


def test_it_points_artifact_refs_in_the_args_at_the_edited_version(reviewer, make_checkpoint):
    cp = make_checkpoint(
        kind="review",
        action={"tool": "apply_patch", "args": {"patch": ""}},
        artifacts=[
            ArtifactInput(
                name="fix.diff", kind="diff", content="--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
            )
        ],
    )
    original = cp.artifacts.get()
    from approvals.models import Checkpoint

    Checkpoint.objects.filter(pk=cp.pk).update(
        action={"tool": "apply_patch", "args": {"patch": original.ref}}
    )
    result = checkpoint_decide(
        cp.pk,
        reviewer,
        "modify",
        edited_artifacts=[ArtifactEdit(original.pk, "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+c\n")],
    )
    edited = Artifact.objects.get(edited_from=original)
    assert result.checkpoint.final_action["args"] == {"patch": edited.ref}


def test_it_takes_edits_at_a_stage_and_shows_the_latest_to_the_next(
    client_for, reviewer, dba, make_checkpoint
):
    from tests.factories import PolicyFactory

    PolicyFactory(
        name="ops then dba",
        priority=1,
        stages=[{"role": "ops", "approvals": 1}, {"role": "dba", "approvals": 1}],
    )
    cp = make_checkpoint(
        kind="review", artifacts=[ArtifactInput(name="r.md", kind="markdown", content="v1\n")]
    )
    original = cp.artifacts.get()
    checkpoint_decide(
        cp.pk, reviewer, "modify", edited_artifacts=[ArtifactEdit(original.pk, "v2\n")]
    )
    page = client_for(dba).get(review_url(cp))
    edited = Artifact.objects.get(edited_from=original)
    form = page.context["form"]
    assert [a.pk for a in form.editable] == [edited.pk]
    assert form.initial[f"artifact_{edited.pk}"] == "v2\n"


@pytest.mark.parametrize("kind", ["approval"])
def test_it_refuses_artifact_edits_outside_review_checkpoints(reviewer, make_checkpoint, kind):
    cp = make_checkpoint(kind=kind, artifacts=[ArtifactInput(name="a.txt", content="x")])
    with pytest.raises(InvalidInput):
        checkpoint_decide(
            cp.pk, reviewer, "modify", edited_artifacts=[ArtifactEdit(cp.artifacts.get().pk, "y")]
        )
    assert not cp.decisions.exists() and Artifact.objects.count() == 1


def test_it_refuses_unchanged_or_foreign_artifacts(reviewer, review_cp, make_checkpoint):
    original = review_cp.artifacts.get()
    with pytest.raises(InvalidInput, match="unchanged"):
        checkpoint_decide(
            review_cp.pk,
            reviewer,
            "modify",
            edited_artifacts=[ArtifactEdit(original.pk, original.inline)],
        )
    other = make_checkpoint(kind="review", artifacts=[ArtifactInput(name="o.md", content="o")])
    with pytest.raises(InvalidInput, match="No such artifact"):
        checkpoint_decide(
            review_cp.pk,
            reviewer,
            "modify",
            edited_artifacts=[ArtifactEdit(other.artifacts.get().pk, "p")],
        )
    with pytest.raises(InvalidInput, match="modify"):
        checkpoint_decide(
            review_cp.pk, reviewer, "approve", edited_artifacts=[ArtifactEdit(original.pk, "new")]
        )
    assert not review_cp.decisions.exists()
    assert Artifact.objects.filter(edited_from__isnull=False).count() == 0


def test_it_stores_big_edits_in_storage(reviewer, review_cp, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    original = review_cp.artifacts.get()
    big = "x" * (300 * 1024) + "\n"
    checkpoint_decide(
        review_cp.pk, reviewer, "modify", edited_artifacts=[ArtifactEdit(original.pk, big)]
    )
    edited = Artifact.objects.get(edited_from=original)
    assert edited.inline == "" and edited.size == len(big)
    with edited.file.open("rb") as fh:
        assert fh.read().decode() == big
