"""Input the API must refuse cleanly (400, never 500), and what a person sees of a run."""

from __future__ import annotations

import pytest

from approvals.models import Artifact, Checkpoint
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("artifact", "field"),
    [
        ({"name": "a", "ref": "artifact://" + "0" * 36}, "ref"),
        ({"name": "a", "ref": "artifact://--------------------------------0000"}, "ref"),
        ({"name": "a\rb.txt", "content": "x"}, "name"),
        (
            {"name": "a.txt", "content": "x", "content_type": "text/plain\rX-Evil: 1"},
            "content_type",
        ),
        ({"name": "a.txt", "content": "x", "content_type": "nonsense"}, "content_type"),
    ],
)
def test_it_refuses_malformed_artifacts_with_a_field_error(api, run_id, artifact, field):
    response = api.post(
        "checkpoints/",
        {"run": run_id, "title": "t", "action": {"tool": "x", "args": {}}, "artifacts": [artifact]},
    )
    assert response.status_code == 400, response.content
    assert field in str(response.json()["errors"])
    assert not Checkpoint.objects.exists() and not Artifact.objects.exists()


def test_a_person_sees_only_the_run_checkpoints_of_their_roles(api, run_id, reviewer_api, dba):
    PolicyFactory(
        name="dba", priority=1, match_tool="sql_*", stages=[{"role": "dba", "approvals": 1}]
    )
    for title, tool in (("ops thing", "delete_files"), ("SECRET dba thing", "sql_update")):
        response = api.post(
            "checkpoints/", {"run": run_id, "title": title, "action": {"tool": tool, "args": {}}}
        )
        assert response.status_code == 201, response.content
    mine = reviewer_api.get(f"runs/{run_id}/")
    assert mine.status_code == 200
    assert [c["title"] for c in mine.json()["checkpoints"]] == ["ops thing"]
    owner = api.get(f"runs/{run_id}/").json()
    assert sorted(c["title"] for c in owner["checkpoints"]) == ["SECRET dba thing", "ops thing"]
