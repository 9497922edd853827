"""CSV export of the queue: the on-screen filters and the role filter apply."""

from __future__ import annotations

import csv
import io

import pytest

from approvals.transitions import checkpoint_decide

pytestmark = pytest.mark.django_db

URL = "/admin/approvals/checkpoint/export.csv"


def rows(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_it_exports_only_what_the_reviewer_may_see(client_for, reviewer, manager, ops_cp, dba_cp):
    mine = rows(client_for(reviewer).get(URL))
    assert [r["id"] for r in mine] == [str(ops_cp.pk)]
    everything = {r["id"] for r in rows(client_for(manager).get(URL))}
    assert everything == {str(ops_cp.pk), str(dba_cp.pk)}


def test_it_follows_the_status_filter_and_reports_the_outcome(
    client_for, reviewer, manager, ops_cp, dba_cp
):
    checkpoint_decide(ops_cp.pk, reviewer, "reject", comment='=HYPERLINK("http://x")')
    pending = rows(client_for(manager).get(URL))
    assert [r["id"] for r in pending] == [str(dba_cp.pk)]
    (rejected,) = rows(client_for(manager).get(URL + "?status=rejected"))
    assert rejected["id"] == str(ops_cp.pk)
    assert rejected["resolved_by"] == "rita" and rejected["status"] == "rejected"
    assert rejected["reason"].startswith("'=")  # no formula injection into spreadsheets
    assert float(rejected["seconds_to_resolution"]) >= 0


def test_it_refuses_anonymous_and_post(client, client_for, reviewer):
    assert client.get(URL).status_code == 302
    assert client_for(reviewer).post(URL).status_code == 405
