"""Evidence exports: what is re-read equals the rows; they stream in constant memory; each is
an audit event; the evidence pack and the feedback sink hold what auditors and agent teams
need."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tracemalloc
import zipfile

import pytest
from django.urls import reverse

from approvals.models import Checkpoint, Decision
from audit import events as audit
from audit.events import Actor, AuditVerb, entry_v1
from audit.models import AuditEvent
from core.ledger.sequencer import sequence_pending
from oversight import analytics as metrics
from tests.oversight.conftest import DAY, at

pytestmark = pytest.mark.django_db

PERIOD = {"period": "custom", "start": str(DAY), "end": str(DAY)}


def body(response) -> bytes:
    assert response.status_code == 200, response.content[:500]
    assert response.streaming
    return b"".join(response.streaming_content)


def read_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def read_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def test_audit_events_round_trip_and_still_verify(known, people, client_for):
    sequence_pending()  # what the standing sequencer does within milliseconds
    c = client_for(people["max"])
    as_csv = read_csv(body(c.get(reverse("admin:oversight_export_audit", args=["csv"]))))
    as_jsonl = read_jsonl(body(c.get(reverse("admin:oversight_export_audit", args=["jsonl"]))))
    # Each export is an event itself, recorded before it starts: the JSON Lines export has
    # one more (the CSV export's). Those two are not in the ledger yet (no seq, no hash).
    assert as_jsonl[-1]["verb"] == as_csv[-1]["verb"] == "export.created"
    assert as_jsonl[-2]["verb"] == "export.created" and len(as_jsonl) == len(as_csv) + 1
    assert as_jsonl[-1]["seq"] is None and as_csv[-1]["seq"] == ""
    as_jsonl, as_csv = as_jsonl[:-2], as_csv[:-1]
    events = list(AuditEvent.objects.order_by("id")[: len(as_jsonl)])
    assert len(events) > 20
    for event, row, line in zip(events, as_csv, as_jsonl, strict=True):
        assert int(row["id"]) == line["id"] == event.pk
        assert int(row["seq"]) == line["seq"] == event.seq
        assert json.loads(row["data"]) == line["data"] == event.data
        assert row["hash"] == line["hash"] == event.hash
        assert row["verb"] == line["verb"] == event.verb
        # An auditor can re-check each leaf hash from the exported fields alone.
        import datetime as dt

        entry = entry_v1(
            seq=line["seq"],
            at=dt.datetime.fromisoformat(line["at"].replace("Z", "+00:00")),
            actor_type=line["actor_type"], actor_id=line["actor_id"],
            actor_label=line["actor_label"], verb=line["verb"],
            target_type=line["target_type"], target_id=line["target_id"],
            data=line["data"],
        )  # fmt: skip
        assert hashlib.sha256(b"\x00" + entry).hexdigest() == line["hash"]


def test_exports_are_filtered_as_on_screen_and_audited(known, people, client_for):
    c = client_for(people["max"])
    url = reverse("admin:oversight_export_audit", args=["jsonl"])
    rows = read_jsonl(body(c.get(url, {"verb": "decision.recorded", "actor": "dora"})))
    assert [r["data"]["outcome"] for r in rows] == ["modify", "approve"]
    export = AuditEvent.objects.filter(verb=AuditVerb.EXPORT_CREATED).get()
    assert export.actor_label == "max"
    assert export.data == {
        "what": "audit-events", "format": "jsonl",
        "filters": {"actor": "dora", "verb": "decision.recorded"},
    }  # fmt: skip


def test_checkpoints_round_trip_with_the_shared_definitions(known, people, client_for):
    c = client_for(people["max"])
    with at(400):
        as_csv = read_csv(
            body(c.get(reverse("admin:oversight_export_checkpoints", args=["csv"]), PERIOD))
        )
        as_jsonl = read_jsonl(
            body(c.get(reverse("admin:oversight_export_checkpoints", args=["jsonl"]), PERIOD))
        )
        expected = {cp.pk: cp for cp in metrics.with_times(Checkpoint.objects.all())}
    assert {r["id"] for r in as_jsonl} == {str(pk) for pk in expected} == {r["id"] for r in as_csv}
    for line, row in zip(as_jsonl, as_csv, strict=True):
        cp = next(v for k, v in expected.items() if str(k) == line["id"])
        assert line["outcome"] == row["outcome"] == cp.outcome
        assert line["sla_breached"] == cp.sla_breached
        assert row["sla_breached"] == ("" if cp.sla_breached is None else str(cp.sla_breached))
        assert line["seconds_to_decision"] == metrics.seconds(cp.time_to_decision)
        assert line["seconds_to_resume"] == metrics.seconds(cp.time_to_resume)
        assert line["tool"] == row["tool"] == cp.tool
    delete4 = next(r for r in as_jsonl if r["title"] == "delete 4")
    assert (delete4["seconds_to_decision"], delete4["sla_breached"]) == (100.0, True)


def test_decisions_round_trip(known, people, client_for):
    c = client_for(people["max"])
    rows = read_jsonl(
        body(c.get(reverse("admin:oversight_export_decisions", args=["jsonl"]), PERIOD))
    )
    as_csv = read_csv(
        body(c.get(reverse("admin:oversight_export_decisions", args=["csv"]), PERIOD))
    )
    decisions = list(Decision.objects.order_by("created_at", "id"))
    assert [r["id"] for r in rows] == [d.pk for d in decisions] == [int(r["id"]) for r in as_csv]
    edit = next(r for r in rows if r["outcome"] == "modify")
    assert edit["reviewer"] == "dora" and edit["role"] == "dba"
    assert edit["edited_action"] == {"tool": "sql_execute", "args": {"n": "edited"}}
    assert (
        json.loads(next(r for r in as_csv if r["outcome"] == "modify")["edited_action"])
        == edit["edited_action"]
    )
    assert edit["policy"] == "sql: a DBA within two minutes"


def test_the_queue_csv_export_uses_the_same_definitions(known, people, client_for):
    with at(400):
        response = client_for(people["max"]).get(
            reverse("admin:approvals_checkpoint_export"), {"status": "all"}
        )
        rows = {r["title"]: r for r in read_csv(b"".join(response.streaming_content))}
    assert rows["delete 4"]["sla_breached"] == "True"
    assert rows["delete 4"]["seconds_to_resolution"] == "100.0"
    assert rows["delete pending"]["sla_breached"] == "True"
    assert rows["delete 0"]["sla_breached"] == "False"
    assert rows["which region?"]["sla_breached"] == ""  # no SLA target: no result


def test_cells_that_would_start_a_formula_are_escaped(policies, bot, people, client_for):
    from tests.oversight.conftest import request_one

    with at(0):
        request_one(bot, title='=HYPERLINK("http://evil")')
    rows = read_csv(
        body(client_for(people["max"]).get(
            reverse("admin:oversight_export_checkpoints", args=["csv"]), PERIOD
        ))
    )  # fmt: skip
    assert rows[0]["title"].startswith("'=HYPERLINK")


def _many_events(n: int) -> None:
    actor = Actor.system("bench")
    for start in range(0, n, 5000):
        with audit.atomic():
            audit.record_many(
                [(actor, AuditVerb.AGENT_CREATED, ("agents.agent", i), {"slug": "x" * 80})
                 for i in range(start, min(n, start + 5000))]
            )  # fmt: skip


def _peak(client, url) -> tuple[int, int]:
    tracemalloc.start()
    try:
        response = client.get(url)
        size = 0
        for chunk in response.streaming_content:
            size += len(chunk)
        return tracemalloc.get_traced_memory()[1], size
    finally:
        tracemalloc.stop()


def test_an_export_streams_in_bounded_memory(people, client_for, monkeypatch):
    from oversight import exports

    monkeypatch.setattr(exports, "FETCH", 500)  # rows per round trip: what memory is bound by
    c = client_for(people["max"])
    url = reverse("admin:oversight_export_audit", args=["jsonl"])
    _many_events(2_500)
    small_peak, small_size = _peak(c, url)
    _many_events(22_500)
    big_peak, big_size = _peak(c, url)
    assert big_size > 9 * small_size  # ten times the rows...
    assert big_peak < 1.3 * small_peak  # ...the same memory


def test_the_evidence_pack_holds_what_an_auditor_asks_for(known, people, client_for):
    sequence_pending()
    with at(400):
        response = client_for(people["max"]).get(reverse("admin:oversight_export_evidence"), PERIOD)
        data = body(response)
    assert response["Content-Type"] == "application/zip"
    pack = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(pack.namelist()) == [
        "README.txt", "audit_events.jsonl", "checkpoints.jsonl", "decisions.jsonl",
        "manifest.json", "verification.json",
    ]  # fmt: skip
    manifest = json.loads(pack.read("manifest.json"))
    for name, info in manifest["files"].items():
        content = pack.read(name)
        assert hashlib.sha256(content).hexdigest() == info["sha256"]
        assert content.count(b"\n") == info["rows"]
    assert manifest["generated_by"]["username"] == "max"
    assert manifest["period"] == {"start": str(DAY), "end": str(DAY)}
    decisions = read_jsonl(pack.read("decisions.jsonl"))
    assert len(decisions) == Decision.objects.count() == 7
    reject = next(d for d in decisions if d["outcome"] == "reject")
    assert reject["reviewer"] == {
        "id": people["rita"].pk, "username": "rita", "name": "", "email": "rita@example.com",
        "roles": ["ops"],
    }  # fmt: skip
    assert reject["role"] == "ops" and reject["policy"] == "deletes: ops within a minute"
    checkpoints = read_jsonl(pack.read("checkpoints.jsonl"))
    assert len(checkpoints) == 10
    assert all(c["stages"] for c in checkpoints)
    events = read_jsonl(pack.read("audit_events.jsonl"))
    assert [e["id"] for e in events] == list(
        AuditEvent.objects.filter(verb__in=[e["verb"] for e in events])
        .filter(id__lte=events[-1]["id"])
        .order_by("id")
        .values_list("id", flat=True)
    )
    verification = json.loads(pack.read("verification.json"))
    assert verification["ok"] is True and verification["checked"] >= len(events) - 1
    # The signed head it was verified against: a trusted head for `hitl verify` later.
    head = verification["head"]
    assert head["tree_size"] == verification["checked"] and head["signature"]
    from core.ledger import heads
    from core.ledger.verify import public_keys

    assert heads.check(head, public_keys()) == ""
    assert AuditEvent.objects.filter(verb="export.created", data__what="evidence-pack").exists()


def test_the_evidence_pack_lists_artifact_digests(policies, bot, people, client_for):
    from approvals.artifacts import ArtifactInput
    from tests.oversight.conftest import request_one

    with at(0):
        cp = request_one(bot, artifacts=[ArtifactInput(name="a.diff", kind="diff", content="-x\n")])
    with at(1):
        data = body(
            client_for(people["max"]).get(reverse("admin:oversight_export_evidence"), PERIOD)
        )
    (row,) = read_jsonl(zipfile.ZipFile(io.BytesIO(data)).read("checkpoints.jsonl"))
    (artifact,) = row["artifacts"]
    assert artifact["sha256"] == hashlib.sha256(b"-x\n").hexdigest() == cp.artifacts.get().sha256


def test_the_feedback_sink_has_every_reviewer_edit(policies, bot, people, client_for):
    from approvals.artifacts import ArtifactEdit, ArtifactInput
    from approvals.transitions import checkpoint_decide
    from tests.oversight.conftest import request_one

    with at(0):
        sql = request_one(
            bot, title="void orders", tool="sql_execute", context={"request": "void old"}
        )
        draft = request_one(
            bot, title="reply", tool="send_email", kind="review",
            artifacts=[ArtifactInput(name="reply.md", kind="markdown", content="Hello Ana\n")],
        )  # fmt: skip
    with at(5):
        checkpoint_decide(sql.pk, people["dora"], "modify", comment="limit it",
                          action={"tool": "sql_execute", "args": {"n": "LIMIT 10"}})  # fmt: skip
        checkpoint_decide(
            draft.pk, people["rita"], "modify", comment="friendlier",
            edited_artifacts=[ArtifactEdit(draft.artifacts.get().pk, "Hello Ana, thanks!\n")],
        )  # fmt: skip
        rows = read_jsonl(
            body(client_for(people["max"]).get(reverse("admin:oversight_export_edits"), PERIOD))
        )
    by_title = {r["title"]: r for r in rows}
    edit = by_title["void orders"]
    assert edit["original_action"] == {"tool": "sql_execute", "args": {"n": "void orders"}}
    assert edit["edited_action"] == {"tool": "sql_execute", "args": {"n": "LIMIT 10"}}
    assert '-    "n": "void orders"' in edit["diff"] and '+    "n": "LIMIT 10"' in edit["diff"]
    assert (edit["comment"], edit["reviewer"], edit["request"]) == ("limit it", "dora", "void old")
    (drafted,) = by_title["reply"]["artifacts"]
    assert drafted["original"] == "Hello Ana\n" and drafted["edited"] == "Hello Ana, thanks!\n"
    assert "+Hello Ana, thanks!" in drafted["diff"]
