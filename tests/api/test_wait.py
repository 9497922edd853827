"""GET /checkpoints/{id}/wait: the Django view (test client) and the ASGI fast path (a real
uvicorn process, decisions made by another process: this test process)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from agents.models import AgentKey
from agents.services import AGENT_KEYS
from approvals.transitions import checkpoint_decide
from audit.events import Actor
from audit.models import AuditEvent


@pytest.mark.django_db
def test_it_returns_at_once_when_already_decided(api, ask, reviewer):
    cp = ask()
    checkpoint_decide(cp["id"], reviewer, "reject", comment="wrong volume")
    response = api.get(f"checkpoints/{cp['id']}/wait", timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "rejected"
    assert body["decision"]["outcome"] == "reject"
    assert body["decision"]["comment"] == "wrong volume"
    assert body["decision"]["decided_by"] == "rita"


@pytest.mark.django_db
def test_it_returns_the_pending_state_at_timeout(api, ask):
    cp = ask()
    response = api.get(f"checkpoints/{cp['id']}/wait", timeout=0)
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert response.json()["decision"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("timeout", ["abc", "61", "-1", "nan"])
def test_it_refuses_a_bad_timeout(api, ask, timeout):
    cp = ask()
    response = api.get(f"checkpoints/{cp['id']}/wait", timeout=timeout)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "timeout" in response.json()["errors"]


@pytest.mark.django_db
def test_it_hides_other_agents_checkpoints(ask, other_api, anon):
    cp = ask()
    assert other_api.get(f"checkpoints/{cp['id']}/wait", timeout=0).status_code == 404
    response = anon.get(f"checkpoints/{cp['id']}/wait", timeout=0)
    assert response.status_code == 401


def _decide_later(checkpoint_id, user, delay: float, **kwargs) -> threading.Thread:
    def run():
        time.sleep(delay)
        checkpoint_decide(checkpoint_id, user, **kwargs)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_wakes_a_live_waiter_when_another_process_decides(live_portal, ask, agent_key, reviewer):
    cp = ask()
    thread = _decide_later(
        cp["id"], reviewer, 1.0, outcome="modify", action={"args": {"paths": ["/var/log/b.log"]}}
    )
    started = time.monotonic()
    response = httpx.get(
        f"{live_portal.url}/api/v1/checkpoints/{cp['id']}/wait",
        params={"timeout": 30},
        headers={"Authorization": f"Bearer {agent_key}"},
        timeout=40,
    )
    elapsed = time.monotonic() - started
    thread.join()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "approved"
    assert body["decision"]["outcome"] == "modify"
    assert body["decision"]["action"] == {
        "tool": "delete_files",
        "args": {"paths": ["/var/log/b.log"]},
    }
    # Woken by the decision, not by the 30 s timeout (the latency itself is in bench/api.py).
    assert elapsed < 10
    assert AuditEvent.objects.filter(verb="checkpoint.approved", target_id=cp["id"]).count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_serves_many_live_waiters_and_errors_on_the_fast_path(
    live_portal, ask, agent_key, agent, reviewer
):
    cps = [ask(title=f"cp {i}") for i in range(20)]
    url = f"{live_portal.url}/api/v1/checkpoints/{{}}/wait"
    headers = {"Authorization": f"Bearer {agent_key}"}
    results: dict[str, dict] = {}

    def wait(cp_id):
        results[cp_id] = httpx.get(
            url.format(cp_id), params={"timeout": 30}, headers=headers, timeout=40
        ).json()

    threads = [threading.Thread(target=wait, args=(cp["id"],)) for cp in cps]
    for t in threads:
        t.start()
    time.sleep(0.5)
    for cp in cps:
        checkpoint_decide(cp["id"], reviewer, "approve")
    for t in threads:
        t.join()
    assert {r["status"] for r in results.values()} == {"approved"}
    assert set(results) == {cp["id"] for cp in cps}

    # the fast path answers errors as problems, like the rest of the API
    bad = httpx.get(url.format(cps[0]["id"]), params={"timeout": "x"}, headers=headers)
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    missing = httpx.get(url.format("00000000-0000-0000-0000-000000000000"), headers=headers)
    assert missing.status_code == 404
    AGENT_KEYS.revoke(AgentKey.objects.get(agent=agent), Actor.system("test"))
    revoked = httpx.get(url.format(cps[0]["id"]), headers=headers)
    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"].startswith("Bearer")
