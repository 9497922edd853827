"""The unmodified `humanlayer` 0.7.9 SDK against a live portal (`HUMANLAYER_API_BASE` =
<portal>/humanlayer/v1): `@hl.require_approval()` and `hl.human_as_tool()` run unchanged;
reviewers decide through the portal's API; the assertions are on what the SDK handed back
to the model and what the decorated function executed."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from humanlayer import AsyncHumanLayer, HumanLayer, ResponseOption
from humanlayer.core.models import FunctionCall, FunctionCallSpec, FunctionCallStatus

from agents.models import Run
from approvals.models import Checkpoint, Decision
from approvals.services import user_token_create
from approvals.transitions import checkpoint_expire
from audit.models import AuditEvent
from tests.integrations.helpers import decide, run_in_thread, wait_for_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def fast_sleep(_seconds):
    threading.Event().wait(0.05)


@pytest.fixture
def hl(live_portal, agent_key):
    return HumanLayer(
        api_key=agent_key,
        api_base_url=f"{live_portal.url}/humanlayer/v1",
        run_id="support-bot-r1",
        sleep=fast_sleep,
    )


def test_require_approval_runs_the_call_once_approved(hl, live_portal, reviewer):
    executed = []

    @hl.require_approval()
    def send_email(to: str, priority: int, cc: list[str]) -> str:
        executed.append((to, priority, cc))
        return f"sent to {to}"

    result = run_in_thread(send_email, to="a@b.c", priority=3, cc=["x@y.z"])
    cp = wait_for_checkpoint()
    assert cp.context["source"] == "humanlayer" and cp.allowed_outcomes == ["approve", "reject"]
    assert cp.action == {
        "tool": "send_email",
        "args": {"to": "a@b.c", "priority": 3, "cc": ["x@y.z"]},
    }
    assert cp.run.external_id == "support-bot-r1"
    decide(live_portal, reviewer, cp, "approve", comment="fine")
    assert result.get() == "sent to a@b.c"
    assert executed == [("a@b.c", 3, ["x@y.z"])]


def test_a_rejection_reaches_the_model_with_its_reason_and_nothing_runs(hl, live_portal, reviewer):
    executed = []

    @hl.require_approval()
    def drop_table(name: str) -> str:
        executed.append(name)
        return "dropped"

    result = run_in_thread(drop_table, name="users")
    cp = wait_for_checkpoint()
    decide(live_portal, reviewer, cp, "reject", comment="use the staging DB")
    assert result.get() == "User denied drop_table with message: use the staging DB"
    assert executed == []


def test_an_edit_is_refused_for_humanlayer_calls(hl, live_portal, reviewer):
    @hl.require_approval()
    def transfer(amount: int) -> str:
        return f"moved {amount}"

    result = run_in_thread(transfer, amount=5000)
    cp = wait_for_checkpoint()
    refused = decide(live_portal, reviewer, cp, "modify", args={"amount": 50}, expect=400)
    assert refused["code"] == "outcome_not_allowed"
    decide(live_portal, reviewer, cp, "approve")
    assert result.get() == "moved 5000"


def test_a_named_reject_reason_without_text_sends_its_prompt(hl, live_portal, reviewer):
    options = [
        ResponseOption(name="too_risky", title="Too risky", prompt_fill="too risky on a Friday"),
        ResponseOption(name="wrong", title="Wrong recipient"),
    ]

    @hl.require_approval(reject_options=options)
    def deploy(service: str) -> str:
        return "deployed"

    result = run_in_thread(deploy, service="api")
    cp = wait_for_checkpoint()
    assert [o["value"] for o in cp.reject_options] == ["too_risky", "wrong"]
    decide(live_portal, reviewer, cp, "reject", answer="too_risky")
    assert result.get() == "User denied deploy with message: too risky on a Friday"


def test_expired_and_cancelled_calls_end_the_polling(hl, live_portal, agent_key):
    @hl.require_approval()
    def wipe(disk: str) -> str:
        return "wiped"

    expiring = run_in_thread(wipe, disk="sda")
    cp = wait_for_checkpoint()
    Checkpoint.objects.filter(pk=cp.pk).update(deadline=cp.created_at)
    assert checkpoint_expire(cp.pk) == "expired"
    assert expiring.get().startswith("User denied wipe with message: No decision within")

    cancelled = run_in_thread(wipe, disk="sdb")
    cp2 = wait_for_checkpoint(exclude=[cp.pk])
    httpx.post(
        f"{live_portal.url}/api/v1/checkpoints/{cp2.pk}/cancel/",
        json={"reason": "the user closed the chat"},
        headers={"Authorization": f"Bearer {agent_key}"},
    ).raise_for_status()
    assert cancelled.get() == ("User denied wipe with message: withdrawn: the user closed the chat")


def test_human_as_tool_returns_the_answer(hl, live_portal, reviewer):
    ask = hl.human_as_tool(
        response_options=[
            ResponseOption(name="formal", title="Formal", prompt_fill="make it formal"),
            ResponseOption(name="casual", title="Casual"),
        ]
    )
    with_text = run_in_thread(ask, "Which tone for the reply?")
    cp = wait_for_checkpoint()
    assert (cp.kind, cp.title) == ("question", "Which tone for the reply?")
    assert cp.options == [
        {"value": "formal", "label": "Formal"},
        {"value": "casual", "label": "Casual"},
    ]
    decide(live_portal, reviewer, cp, "answer", answer="formal", comment="formal, and short")
    assert with_text.get() == "formal, and short"

    option_only = run_in_thread(ask, "And the sign-off?")
    cp2 = wait_for_checkpoint(exclude=[cp.pk])
    decide(live_portal, reviewer, cp2, "answer", answer="formal")
    assert option_only.get() == "make it formal"

    rejected = run_in_thread(ask, "Send it to the CEO?")
    cp3 = wait_for_checkpoint(exclude=[cp.pk, cp2.pk])
    decide(live_portal, reviewer, cp3, "reject", comment="not our call")
    assert rejected.get() == "[rejected] not our call"


def test_the_async_sdk_works_too(live_portal, agent_key, reviewer):
    async def fast(_seconds):
        await asyncio.sleep(0.05)

    hl = AsyncHumanLayer(
        api_key=agent_key, api_base_url=f"{live_portal.url}/humanlayer/v1", sleep=fast
    )

    @hl.require_approval()
    async def restart(service: str, force: bool) -> str:
        return f"restarted {service} force={force}"

    result = run_in_thread(lambda: asyncio.run(restart(service="web", force=False)))
    cp = wait_for_checkpoint()
    decide(live_portal, reviewer, cp, "approve")
    assert result.get() == "restarted web force=False"


def test_a_repeated_call_id_is_the_same_checkpoint(hl, live_portal):
    functions = hl.backend.functions()
    call = FunctionCall(
        run_id="r-fixed",
        call_id="call-fixed",
        spec=FunctionCallSpec(fn="f", kwargs={"n": 1}, state={"step": 7}),
    )
    first = functions.add(call)
    again = functions.add(call)
    assert first.call_id == again.call_id == "call-fixed"
    assert again.spec.state == {"step": 7}
    assert Checkpoint.objects.filter(external_id="humanlayer:call-fixed").count() == 1
    assert Run.objects.filter(external_id="r-fixed").count() == 1
    other = httpx.post(
        f"{live_portal.url}/humanlayer/v1/function_calls",
        json={**call.model_dump(), "spec": {"fn": "f", "kwargs": {"n": 2}}},
        headers={"Authorization": f"Bearer {hl.api_key}"},
    )
    assert other.status_code == 409 and other.json()["code"] == "conflict"


def test_people_respond_through_the_sdk_agents_cannot(hl, live_portal, reviewer, agent_key):
    functions = hl.backend.functions()
    functions.add(
        FunctionCall(run_id="r", call_id="call-r", spec=FunctionCallSpec(fn="f", kwargs={}))
    )
    as_agent = httpx.post(
        f"{live_portal.url}/humanlayer/v1/agent/function_calls/call-r/respond",
        json={"approved": True},
        headers={"Authorization": f"Bearer {agent_key}"},
    )
    assert as_agent.status_code == 403 and as_agent.headers["content-type"].endswith("json")
    read_only = httpx.post(
        f"{live_portal.url}/humanlayer/v1/agent/function_calls/call-r/respond",
        json={"approved": True},
        headers={"Authorization": f"Bearer {user_token_create(reviewer)}"},
    )
    assert read_only.status_code == 403 and "decide scope" in read_only.json()["detail"]
    assert not Decision.objects.exists()

    person = HumanLayer(
        api_key=user_token_create(reviewer, scope="decide"),
        api_base_url=f"{live_portal.url}/humanlayer/v1",
    ).backend.functions()
    answered = person.respond(
        "call-r", FunctionCallStatus(approved=False, comment="not on a Friday")
    )
    assert answered.status.approved is False and answered.status.comment == "not on a Friday"
    assert answered.status.responded_at is not None
    decision = Decision.objects.get()
    assert (decision.reviewer, decision.outcome, decision.channel) == (reviewer, "reject", "api")
    assert AuditEvent.objects.filter(verb="checkpoint.rejected", actor_label="rita").exists()
    assert functions.get("call-r").status.comment == "not on a Friday"
    again = httpx.post(
        f"{live_portal.url}/humanlayer/v1/agent/function_calls/call-r/respond",
        json={"approved": True},
        headers={"Authorization": f"Bearer {person.connection.api_key}"},
    )
    assert again.status_code == 409 and again.json()["winner"] == "rita"


def test_every_answer_is_json_and_no_path_redirects(hl, live_portal, agent_key):
    auth = {"Authorization": f"Bearer {agent_key}"}
    base = f"{live_portal.url}/humanlayer/v1"
    for method, path in [
        ("GET", "/function_calls/call-unknown"),
        ("GET", "/contact_requests/call-unknown"),
        ("GET", "/no/such/endpoint"),
        ("POST", "/function_calls/"),
        ("POST", "/agent/function_calls/x/escalate_email"),
    ]:
        response = httpx.request(method, base + path, headers=auth, json={})
        assert response.status_code in (404, 501), (path, response.status_code)
        assert response.json()["status"] == response.status_code
    bad = httpx.post(base + "/function_calls", headers=auth, json={"run_id": "r"})
    assert bad.status_code == 400 and "call_id" in bad.json()["errors"]
    unauth = httpx.get(base + "/function_calls/x")
    assert unauth.status_code == 401 and unauth.json()["code"] == "not_authenticated"
    with pytest.raises(Exception, match="404"):
        hl.backend.functions().get("call-unknown")


def test_a_call_id_two_agents_share_is_never_guessed_for_a_reviewer(
    hl, live_portal, reviewer, agent_key
):
    """Call ids are the clients' own, unique per agent. A reviewer sees both agents' calls:
    the shared id alone names neither (409, nothing decided); `<agent>:<call id>` names one."""
    from agents.services import AGENT_KEYS
    from audit.events import Actor
    from tests.factories import AgentFactory

    theirs = HumanLayer(
        api_key=AGENT_KEYS.create(AgentFactory(slug="other"), Actor.system("test")),
        api_base_url=f"{live_portal.url}/humanlayer/v1",
        run_id="other-r1",
    ).backend.functions()
    theirs.add(
        FunctionCall(run_id="o", call_id="call-same", spec=FunctionCallSpec(fn="wipe", kwargs={}))
    )
    hl.backend.functions().add(
        FunctionCall(run_id="r", call_id="call-same", spec=FunctionCallSpec(fn="send", kwargs={}))
    )
    person = HumanLayer(
        api_key=user_token_create(reviewer, scope="decide"),
        api_base_url=f"{live_portal.url}/humanlayer/v1",
    ).backend.functions()
    base, auth = (
        f"{live_portal.url}/humanlayer/v1",
        {"Authorization": f"Bearer {person.connection.api_key}"},
    )
    ambiguous = httpx.post(
        f"{base}/agent/function_calls/call-same/respond", json={"approved": True}, headers=auth
    )
    assert ambiguous.status_code == 409, ambiguous.text
    assert ambiguous.json()["code"] == "ambiguous_call_id"
    assert "bot:call-same" in ambiguous.json()["detail"]
    assert "other:call-same" in ambiguous.json()["detail"]
    assert httpx.get(f"{base}/function_calls/call-same", headers=auth).status_code == 409
    assert not Decision.objects.exists()

    answered = person.respond("bot:call-same", FunctionCallStatus(approved=True, comment="ok"))
    assert answered.spec.fn == "send" and answered.status.approved is True
    mine = Checkpoint.objects.get(agent__slug="bot", external_id="humanlayer:call-same")
    other = Checkpoint.objects.get(agent__slug="other", external_id="humanlayer:call-same")
    assert (mine.status, other.status) == ("approved", "pending")
    assert Decision.objects.get().checkpoint == mine
    # Each agent still reads its own call by the plain id.
    assert hl.backend.functions().get("call-same").status.approved is True
    assert theirs.get("call-same").status.approved is None
