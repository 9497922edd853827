"""The Python client against a real portal process (uvicorn, ASGI, the test database).
Decisions are made by this test process, as a reviewer would from the web page."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from agents.models import Run, RunEvent
from approvals.models import Checkpoint, Decision
from approvals.transitions import checkpoint_decide
from hitl_client import ApprovalRejected, ConflictError, HitlClient, Rejection, WaitTimeout

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(live_portal, agent_key):
    with HitlClient(live_portal.url, agent_key) as c:
        yield c


def decide_when_asked(user, outcome="approve", count=1, **kwargs) -> threading.Thread:
    """A reviewer in another thread: decides each new pending checkpoint."""

    def run():
        from django.db import connection

        done: set = set()
        deadline = time.monotonic() + 30
        try:
            while len(done) < count and time.monotonic() < deadline:
                for cp in Checkpoint.objects.filter(status="pending").exclude(pk__in=done):
                    checkpoint_decide(cp.pk, user, outcome, **kwargs)
                    done.add(cp.pk)
                time.sleep(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_it_runs_the_whole_flow(client, reviewer):
    run = client.start_run("Free disk space", external_id="T-9")
    client.log("found 3 old logs", kind="observation")
    cp = client.request_approval(
        "Delete 3 logs",
        tool="delete_files",
        args={"paths": ["/a", "/b", "/c"]},
        risk="high",
        reasoning=["disk is 95% full"],
        artifacts=[{"name": "plan", "kind": "markdown", "content": "# plan"}],
    )
    assert cp.pending and cp.review_url
    reviewer_thread = decide_when_asked(
        reviewer, "modify", action={"args": {"paths": ["/a"]}}, comment="only /a"
    )
    cp.wait(timeout=30)
    reviewer_thread.join()
    assert cp.approved and cp.edited
    assert cp.approved_args == {"paths": ["/a"]}
    assert cp.reason == "only /a"
    done = client.complete_run(result={"deleted": 1})
    assert done.status == "completed"
    row = Run.objects.get(pk=run.id)
    assert (row.status, row.result, row.external_id) == ("completed", {"deleted": 1}, "T-9")
    assert RunEvent.objects.get(run=row).message == "found 3 old logs"


def test_it_asks_a_question_and_gets_the_answer(client, reviewer):
    client.start_run("deploy")
    thread = decide_when_asked(reviewer, "answer", answer="eu-west-1")
    assert client.ask("Which region?", options=["eu-west-1", "us-east-1"], timeout=30) == (
        "eu-west-1"
    )
    thread.join()


def test_it_raises_with_the_reason_when_rejected(client, reviewer):
    client.start_run("x")
    thread = decide_when_asked(reviewer, "reject", comment="use the staging DB")
    cp = client.request_approval("Drop table", tool="sql", args={"q": "DROP TABLE t"})
    with pytest.raises(ApprovalRejected) as info:
        cp.wait(timeout=30).raise_for_outcome()
    thread.join()
    assert info.value.reason == "use the staging DB" and info.value.status == "rejected"


def test_it_times_out_its_own_wait(client):
    cp = client.request_approval("slow", tool="t", args={})
    with pytest.raises(WaitTimeout):
        cp.wait(timeout=0.5)
    cp.cancel("changed my mind")
    assert cp.status == "cancelled"
    with pytest.raises(ConflictError) as info:
        client.cancel(cp.id)
    assert info.value.current_status == "cancelled"


def test_the_decorator_runs_with_the_approved_arguments(client, reviewer):
    client.start_run("files")
    calls = []

    class Handle:  # not JSON: shown as repr, passed through untouched
        pass

    handle = Handle()

    @client.require_approval(risk="high", title="Delete {path}")
    def delete_file(path: str, recursive: bool = False, ctx=handle):
        calls.append((path, recursive, ctx))
        return f"deleted {path}"

    thread = decide_when_asked(
        reviewer,
        "modify",
        action={"args": {"path": "/tmp/x", "recursive": True, "ctx": repr(handle)}},
    )
    assert delete_file("/tmp/y") == "deleted /tmp/x"
    thread.join()
    assert calls == [("/tmp/x", True, handle)]
    cp = Checkpoint.objects.get()
    assert cp.title == "Delete /tmp/y" and cp.risk == "high"
    assert cp.action["tool"] == "delete_file"
    assert cp.action["args"]["path"] == "/tmp/y" and cp.action["args"]["recursive"] is False


def test_the_decorator_returns_a_rejection_the_agent_can_reason_about(client, reviewer):
    client.start_run("mail")

    @client.require_approval(on_reject="return")
    def send_mail(to: str, body: str):
        raise AssertionError("must not run")

    thread = decide_when_asked(reviewer, "reject", comment="not to customers")
    result = send_mail("ceo@example.com", "hi")
    thread.join()
    assert isinstance(result, Rejection) and not result
    assert "not to customers" in str(result)


def test_the_decorator_works_on_async_functions(client, reviewer):
    client.start_run("async")

    @client.require_approval(title="Restart {service}")
    async def restart(service: str):
        await asyncio.sleep(0)
        return f"restarted {service}"

    thread = decide_when_asked(reviewer, "approve", count=1)

    async def main():
        try:
            return await restart("web")
        finally:
            await client.aclose()

    assert asyncio.run(main()) == "restarted web"
    thread.join()
    assert Decision.objects.get().outcome == "approve"


def test_a_reviewer_uses_the_client_with_a_personal_token(live_portal, client, reviewer):
    from approvals.services import user_token_create

    cp = client.request_approval("restart db", tool="restart", args={"name": "db"})
    with HitlClient(live_portal.url, user_token_create(reviewer, scope="decide")) as human:
        assert [item["id"] for item in human.queue()] == [cp.id]
        result = human.decide(cp.id, "approve", comment="go")
    assert result["resolved"] is True
    assert cp.wait(timeout=5).approved


def test_two_replicas_acting_on_one_approval_exactly_one_redeems(live_portal, agent_key, reviewer):
    """Two copies of an agent got the same approval (a retried job, a second replica): the
    first to redeem acts; the other gets a 409 and must not."""
    from core.models import Receipt

    with (
        HitlClient(live_portal.url, agent_key) as one,
        HitlClient(live_portal.url, agent_key) as two,
    ):
        cp = one.request_approval("restart db", tool="restart", args={"name": "db"})
        checkpoint_decide(cp.id, reviewer, "approve")
        first, second = one.wait(cp.id), two.wait(cp.id)
        assert first.receipt and first.receipt == second.receipt and first.ledger_seq
        assert one.verify_receipt(
            first.receipt, action={"tool": "restart", "args": {"name": "db"}}
        )["valid"]
        done = one.redeem(first.receipt, tool="restart", args={"name": "db"})
        with pytest.raises(ConflictError) as refused:
            two.redeem(second.receipt, tool="restart", args={"name": "db"})
    assert refused.value.status == 409 and refused.value.code == "receipt_redeemed"
    assert refused.value.winner == done["redeemed_by"] == "agent:bot"
    assert Receipt.objects.get().redeemed_at is not None


class OtherReplicaRedeemsFirst(httpx.HTTPTransport):
    """Another copy of the agent, acting on the same approval, spends the receipt just
    before this one tries to."""

    def __init__(self, other: HitlClient):
        super().__init__()
        self.other = other

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/receipts/redeem/"):
            body = json.loads(request.read())
            self.other.redeem(body["receipt"], action=body["action"])
        return super().handle_request(request)


def test_the_decorator_does_not_run_the_tool_when_the_receipt_was_redeemed(
    live_portal, agent_key, reviewer
):
    from audit.models import AuditEvent
    from core.models import Receipt

    calls = []
    with (
        HitlClient(live_portal.url, agent_key) as other,
        HitlClient(live_portal.url, agent_key, transport=OtherReplicaRedeemsFirst(other)) as client,
    ):
        client.start_run("restart")

        @client.require_approval(title="Restart {service}")
        def restart(service: str):
            calls.append(service)

        thread = decide_when_asked(reviewer, "approve")
        with pytest.raises(ConflictError) as refused:
            restart("db")
        thread.join()
    assert calls == []  # the 409 stopped it: the other replica acts, this one must not
    assert refused.value.status == 409 and refused.value.code == "receipt_redeemed"
    assert Receipt.objects.get().redeemed_at is not None
    assert AuditEvent.objects.filter(verb="receipt.redeemed").count() == 1
