"""Exact-action receipts through the API: issued on approval (edits included), signed with
the ledger key and carrying the approval's ledger seq; refused when tampered with, expired,
reused or for another action; of two concurrent redeemers exactly one wins."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading

import pytest
from django.db import connections
from django.utils import timezone

from agents.services import AGENT_KEYS
from approvals.transitions import checkpoint_decide
from audit.events import Actor
from audit.models import AuditEvent
from core.canonical import action_sha256
from core.ledger.sequencer import sequence_pending
from core.ledger.verify import public_keys
from core.models import Receipt
from hitl_client.ledger import open_receipt
from tests.api.conftest import Api

pytestmark = pytest.mark.django_db

ACTION = {"tool": "delete_files", "args": {"paths": ["/var/log/a.log"]}}


def approved(ask, api, reviewer, **decide) -> dict:
    cp = ask()
    checkpoint_decide(cp["id"], reviewer, decide.pop("outcome", "approve"), **decide)
    # What the commit does in sync mode (a test's transaction never commits); a read does not.
    sequence_pending()
    return api.get(f"checkpoints/{cp['id']}/").json()


def keys() -> dict[str, str]:
    from core.ledger.keys import b64, raw_public

    return {kid: b64(raw_public(key)) for kid, key in public_keys().items()}


def test_an_approval_carries_a_signed_receipt_bound_to_the_action_and_its_ledger_seq(
    ask, api, reviewer, agent
):
    cp = approved(ask, api, reviewer)
    decision = cp["decision"]
    event = AuditEvent.objects.get(verb="checkpoint.approved", target_id=cp["id"])
    assert decision["ledger"]["event"] == event.pk and decision["ledger"]["seq"] == event.seq
    assert decision["ledger"]["proof_url"].endswith(
        f"/api/v1/ledger/proof/inclusion?event={event.pk}"
    )
    claims = open_receipt(decision["receipt"], keys())  # offline, as an agent would
    receipt = Receipt.objects.get()
    assert claims["rid"] == str(receipt.pk) and claims["nonce"] == receipt.nonce
    assert claims["checkpoint"] == cp["id"] and claims["agent"] == agent.slug
    assert claims["seq"] == event.seq and claims["event"] == event.pk
    assert claims["action_sha256"] == action_sha256(ACTION)
    assert claims["deciders"] == ["rita"]
    assert claims["policy"] == {"id": None, "name": None, "version": None}
    assert claims["exp"] - claims["iat"] == 3600
    assert event.data["receipt"]["id"] == str(receipt.pk)


def test_it_redeems_once_and_records_it_in_the_ledger(ask, api, reviewer):
    token = approved(ask, api, reviewer)["decision"]["receipt"]
    response = api.post("receipts/redeem/", {"receipt": token, "action": ACTION})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["redeemed_by"] == "agent:bot" and body["action_sha256"] == action_sha256(ACTION)
    event = AuditEvent.objects.get(verb="receipt.redeemed")
    assert event.actor_label == "bot" and event.data["receipt"] == body["receipt"]
    again = api.post("receipts/redeem/", {"receipt": token, "action": ACTION})
    assert again.status_code == 409
    assert again.json()["code"] == "receipt_redeemed" and again.json()["winner"] == "agent:bot"
    assert AuditEvent.objects.filter(verb="receipt.redeemed").count() == 1
    check = api.post("receipts/verify/", {"receipt": token}).json()
    assert (check["valid"], check["problem"]) == (False, "redeemed")


def test_it_refuses_tampered_arguments_and_a_tampered_receipt(ask, api, reviewer):
    token = approved(ask, api, reviewer)["decision"]["receipt"]
    other = {"tool": "delete_files", "args": {"paths": ["/etc/passwd"]}}
    response = api.post("receipts/redeem/", {"receipt": token, "action": other})
    assert response.status_code == 409 and response.json()["code"] == "action_mismatch"
    # Rewrite the claims to match the other action: the signature no longer holds.
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["action_sha256"] = action_sha256(other)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = api.post(
        "receipts/redeem/", {"receipt": f"{header}.{forged}.{signature}", "action": other}
    )
    assert response.status_code == 400
    assert "signature" in response.json()["errors"]["receipt"][0]
    assert Receipt.objects.get().redeemed_at is None  # nothing was spent
    assert not AuditEvent.objects.filter(verb="receipt.redeemed").exists()


def _b64json(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "typ": "hitl-receipt+jws", "kid": ["a", "b"]},
        {"alg": "EdDSA", "typ": "hitl-receipt+jws", "kid": {"x": 1}},
        {"alg": "EdDSA", "typ": "hitl-receipt+jws", "kid": 7},
        ["EdDSA", "hitl-receipt+jws"],
        "EdDSA",
    ],
    ids=["kid-list", "kid-object", "kid-number", "header-list", "header-string"],
)
def test_it_refuses_a_receipt_whose_header_is_malformed_with_400(ask, api, reviewer, header):
    token = approved(ask, api, reviewer)["decision"]["receipt"]
    _header, payload, signature = token.split(".")
    forged = f"{_b64json(header)}.{payload}.{signature}"
    for path in ("receipts/verify/", "receipts/redeem/"):
        response = api.post(path, {"receipt": forged, "action": ACTION})
        assert response.status_code == 400, (path, response.content)
        assert response["Content-Type"].startswith("application/problem+json")
        assert "receipt" in response.json()["errors"]
    assert Receipt.objects.get().redeemed_at is None
    assert not AuditEvent.objects.filter(verb="receipt.redeemed").exists()
    with pytest.raises(ValueError, match="not a receipt"):
        open_receipt(forged, keys())  # the client's offline check says so too


def test_it_binds_the_edited_action_not_the_proposal(ask, api, reviewer):
    edited = {"paths": ["/var/log/b.log"]}
    cp = approved(ask, api, reviewer, outcome="modify", action={"args": edited})
    token = cp["decision"]["receipt"]
    response = api.post("receipts/redeem/", {"receipt": token, "action": ACTION})
    assert response.status_code == 409 and response.json()["code"] == "action_mismatch"
    response = api.post(
        "receipts/redeem/", {"receipt": token, "action": {"tool": "delete_files", "args": edited}}
    )
    assert response.status_code == 200


def test_it_refuses_an_expired_receipt(ask, api, reviewer):
    token = approved(ask, api, reviewer)["decision"]["receipt"]
    Receipt.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = api.post("receipts/redeem/", {"receipt": token, "action": ACTION})
    assert response.status_code == 409 and response.json()["code"] == "receipt_expired"
    assert Receipt.objects.get().redeemed_at is None


def test_only_the_checkpoints_agent_may_redeem(ask, api, reviewer, other_api):
    token = approved(ask, api, reviewer)["decision"]["receipt"]
    response = other_api.post("receipts/redeem/", {"receipt": token, "action": ACTION})
    assert response.status_code == 404
    assert Receipt.objects.get().redeemed_at is None


def test_a_rejection_has_no_receipt(ask, api, reviewer):
    cp = approved(ask, api, reviewer, outcome="reject", comment="no")
    assert cp["decision"]["receipt"] is None and cp["decision"]["ledger"]["seq"] is not None
    assert not Receipt.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_redeemers_exactly_one_wins(agent, reviewer):
    key = AGENT_KEYS.create(agent, Actor.system("test"))
    replicas = [Api(key), Api(key)]
    run = replicas[0].post("runs/", {"task": "t"}).json()["id"]
    cp = replicas[0].post("checkpoints/", {"run": run, "title": "t", "action": ACTION}).json()
    checkpoint_decide(cp["id"], reviewer, "approve")
    token = replicas[0].get(f"checkpoints/{cp['id']}/").json()["decision"]["receipt"]
    barrier, statuses = threading.Barrier(2), []

    def redeem(client: Api) -> None:
        try:
            barrier.wait(10)
            statuses.append(client.post("receipts/redeem/", {"receipt": token, "action": ACTION}))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=redeem, args=(c,)) for c in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status_code for r in statuses) == [200, 409]
    loser = next(r for r in statuses if r.status_code == 409).json()
    assert loser["code"] == "receipt_redeemed" and loser["winner"] == "agent:bot"
    assert AuditEvent.objects.filter(verb="receipt.redeemed").count() == 1
