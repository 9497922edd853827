from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from agents.models import Run
from api.idempotency import purge_idempotency_records
from api.models import IdempotencyRecord
from approvals.models import Checkpoint, Decision
from audit.models import AuditEvent
from tests.api.conftest import Api


@pytest.mark.django_db
def test_it_replays_the_first_response(api, run_id):
    body = {"run": run_id, "title": "t", "action": {"tool": "x", "args": {"n": 1}}}
    first = api.post("checkpoints/", body, key="k-1")
    again = api.post("checkpoints/", body, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert Checkpoint.objects.count() == 1
    assert AuditEvent.objects.filter(verb="checkpoint.requested").count() == 1
    record = IdempotencyRecord.objects.get()
    assert (record.scope, record.key, record.response_status) == (
        f"agent:{Run.objects.get().agent_id}",
        "k-1",
        201,
    )


@pytest.mark.django_db
def test_it_treats_key_order_as_the_same_body(api):
    api.post("runs/", {"task": "a", "metadata": {"x": 1, "y": 2}}, key="k")
    replay = api.post("runs/", raw=b'{"metadata": {"y": 2, "x": 1}, "task": "a"}', key="k")
    assert replay["Idempotent-Replayed"] == "true"
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_it_refuses_the_same_key_with_another_body(api, run_id):
    api.post("runs/", {"task": "a"}, key="k-2")
    response = api.post("runs/", {"task": "b"}, key="k-2")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    other_endpoint = api.post(f"runs/{run_id}/events/", {"message": "a"}, key="k-2")
    assert other_endpoint.status_code == 422
    assert list(Run.objects.values_list("task", flat=True).order_by("task")) == ["a", "clean up"]


@pytest.mark.django_db
def test_it_scopes_keys_per_agent(api, other_api):
    assert api.post("runs/", {"task": "a"}, key="shared").status_code == 201
    theirs = other_api.post("runs/", {"task": "a"}, key="shared")
    assert theirs.status_code == 201 and not theirs.has_header("Idempotent-Replayed")
    assert Run.objects.count() == 2


@pytest.mark.django_db
def test_it_does_not_store_failures(api, run_id):
    bad = api.post("checkpoints/", {"run": run_id, "title": ""}, key="k-3")
    assert bad.status_code == 400
    assert not IdempotencyRecord.objects.exists()
    good = api.post(
        "checkpoints/", {"run": run_id, "title": "ok", "action": {"tool": "x"}}, key="k-3"
    )
    assert good.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "naïve"])
def test_it_refuses_malformed_keys(api, key):
    response = api.client.post(
        "/api/v1/runs/", {"task": "a"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_it_makes_decisions_idempotent_too(ask, reviewer_api):
    cp = ask()
    first = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"}, key="d-1"
    )
    again = reviewer_api.post(
        f"checkpoints/{cp['id']}/decision/", {"outcome": "approve"}, key="d-1"
    )
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert Decision.objects.count() == 1


@pytest.mark.django_db
def test_it_purges_records_after_48_hours(api):
    api.post("runs/", {"task": "a"}, key="old")
    api.post("runs/", {"task": "b"}, key="new")
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - dt.timedelta(hours=49)
    )
    assert purge_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_resource_for_concurrent_duplicates(agent_key, run_id):
    body = {"run": run_id, "title": "race", "action": {"tool": "x", "args": {}}}
    barrier = threading.Barrier(6)
    responses = []

    def post():
        try:
            barrier.wait()
            responses.append(Api(agent_key).post("checkpoints/", body, key="race-1"))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == 5
    assert Checkpoint.objects.count() == 1
    assert AuditEvent.objects.filter(verb="checkpoint.requested").count() == 1


@pytest.mark.django_db
def test_it_refuses_a_key_reused_after_the_purge_for_a_new_checkpoint(api, run_id):
    body = {"run": run_id, "title": "t", "action": {"tool": "x"}}
    api.post("checkpoints/", body, key="kept")
    IdempotencyRecord.objects.all().delete()  # purged after 48 h
    response = api.post("checkpoints/", body, key="kept")
    assert response.status_code == 409
    assert Checkpoint.objects.count() == 1
