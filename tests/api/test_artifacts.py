from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from approvals.models import Artifact, Checkpoint
from approvals.services import user_token_create
from tests.api.conftest import Api

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def upload(api: Api, content: bytes = PNG, name="shot.png", key=None, **fields):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.client.post(
        "/api/v1/artifacts/",
        {"file": SimpleUploadedFile(name, content, content_type="image/png"), **fields},
        format="multipart",
        **extra,
    )


def test_it_uploads_and_attaches_an_artifact(api, run_id, agent):
    response = upload(api, kind="image")
    assert response.status_code == 201, response.content
    body = response.json()
    art = Artifact.objects.get(pk=body["id"])
    assert body["ref"] == f"artifact://{art.id}"
    assert body["sha256"] == hashlib.sha256(PNG).hexdigest() == art.sha256
    assert body["size"] == len(PNG) == art.size
    assert (art.agent, art.kind, art.checkpoint) == (agent, "image", None)
    assert art.file.read() == PNG

    cp = api.post(
        "checkpoints/",
        {
            "run": run_id,
            "title": "look",
            "action": {"tool": "t"},
            "artifacts": [{"name": "shot.png", "kind": "image", "ref": body["ref"]}],
        },
    ).json()
    assert Artifact.objects.get(pk=art.pk).checkpoint_id is not None
    assert cp["artifacts"][0]["ref"] == body["ref"]
    assert cp["artifacts"][0]["content"] is None  # binary: fetched from content_url


def test_it_serves_artifacts_to_authorized_readers_only(api, other_api, run_id, reviewer, dba):
    ref = upload(api).json()
    cp = api.post(
        "checkpoints/",
        {
            "run": run_id,
            "title": "look",
            "action": {"tool": "t"},
            "artifacts": [{"name": "s", "ref": ref["ref"]}],
        },
    ).json()
    content = api.get(f"artifacts/{ref['id']}/content/")
    assert content.status_code == 200
    assert b"".join(content.streaming_content) == PNG
    assert content["Content-Disposition"].startswith("attachment")
    assert content["X-Content-Type-Options"] == "nosniff"
    assert other_api.get(f"artifacts/{ref['id']}/").status_code == 404
    assert other_api.get(f"artifacts/{ref['id']}/content/").status_code == 404
    reviewer_api = Api(user_token_create(reviewer, scope="decide"))
    assert reviewer_api.get(f"artifacts/{ref['id']}/").json()["sha256"] == ref["sha256"]
    assert (
        Api(user_token_create(dba, scope="decide")).get(f"artifacts/{ref['id']}/").status_code
        == 404
    )
    assert Checkpoint.objects.get(pk=cp["id"]).artifacts.count() == 1


def test_it_refuses_to_attach_another_agents_artifact(api, other_api, run_id):
    ref = upload(other_api).json()["ref"]
    response = api.post(
        "checkpoints/",
        {
            "run": run_id,
            "title": "x",
            "action": {"tool": "t"},
            "artifacts": [{"name": "s", "ref": ref}],
        },
    )
    assert response.status_code == 400
    assert "artifacts" in response.json()["errors"]
    assert not Checkpoint.objects.exists()
    assert Artifact.objects.get().checkpoint is None


def test_it_replays_an_upload_with_the_same_key(api):
    first = upload(api, key="u-1").json()
    again = upload(api, key="u-1")
    assert again["Idempotent-Replayed"] == "true" and again.json() == first
    assert upload(api, content=b"other", key="u-1").status_code == 422
    assert Artifact.objects.count() == 1


@override_settings(HITL_API_MAX_UPLOAD_BYTES=2048)
def test_it_refuses_oversize_uploads_with_413(api):
    response = upload(api, content=b"x" * 10_000)
    assert response.status_code == 413
    assert not Artifact.objects.exists()


def test_it_requires_a_file(api):
    response = api.client.post("/api/v1/artifacts/", {"name": "x"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["errors"]
