"""Where the portal sends (role channels, ledger witnesses, agent callback URLs): public
addresses only, in every spelling, checked when the URL is saved and again at each send (the
name resolved then, every address checked, the request sent to the address checked, so DNS
rebinding reaches nothing); what a receiver answers is stored as one bounded line of text.
HITL_ALLOW_PRIVATE_URLS=1 lifts the address rule, for tests and local development."""

from __future__ import annotations

import socket
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from agents.models import Agent, WebhookDelivery
from approvals.transitions import checkpoint_decide
from core.ledger import sequencer, witnesses
from core.models import WitnessDelivery, WitnessState
from notifications.models import Delivery, RoleChannel
from tests.factories import AgentFactory, UserFactory
from tests.receivers import HttpReceiver
from tests.test_commands import settings_check

pytestmark = pytest.mark.django_db

INTERNAL = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:6379/",
    "http://[::1]/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://127.1/hook",
    "http://0177.0.0.1/hook",
    "http://0.0.0.0:8000/",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://100.64.0.1/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://localhost:8000/hook",
]
MALFORMED = [
    "https://user:pw@hooks.slack.com/services/T/B/x",
    "https://user@hooks.slack.com/services/T/B/x",
    "ftp://hooks.slack.com/x",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
]


@pytest.fixture
def ops_team(db):
    """The ops role's reviewers: a role the channels can be for."""
    return {name: UserFactory(username=name, roles=["ops"]) for name in ("rita", "raj")}


@pytest.fixture
def resolve_as(monkeypatch):
    """Make names resolve where a test says (as a DNS server an attacker controls would)."""
    real = socket.getaddrinfo
    answers: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            if not answers[host]:
                raise socket.gaierror(socket.EAI_NONAME, "does not resolve now")
            address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.mark.parametrize("url", INTERNAL + MALFORMED)
def test_it_refuses_an_internal_or_malformed_url_when_it_is_saved(url, ops_team):
    for kind in ("slack", "teams", "webhook"):
        with pytest.raises(ValidationError) as refused:
            RoleChannel(role="ops", kind=kind, url=url).clean()
        assert "url" in refused.value.message_dict, (kind, refused.value.message_dict)
    with pytest.raises(ValidationError) as refused:
        Agent(name="b", slug="b", callback_url=url).full_clean()
    assert "callback_url" in refused.value.message_dict
    with pytest.raises(CommandError, match="--callback-url"):
        call_command("createagent", "deploy-bot", "--callback-url", url, stdout=StringIO())
    assert not Agent.objects.exists()


def test_a_name_that_resolves_to_an_internal_address_is_refused_when_saved(resolve_as):
    resolve_as["metadata.attacker.test"] = ["169.254.169.254"]
    with pytest.raises(ValidationError, match="link-local"):
        Agent(name="b", slug="b", callback_url="http://metadata.attacker.test/").full_clean()


def test_the_agent_admin_refuses_an_internal_callback_url(client, django_user_model):
    agent = AgentFactory(slug="bot", name="Bot", callback_url="https://a.example/hook")
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    page = client.post(
        f"/admin/agents/agent/{agent.pk}/change/",
        {"name": "Bot", "slug": "bot", "kind": "external", "callback_url": "http://127.0.0.1:6379/",
         "config": "{}", "active": "on", "keys-TOTAL_FORMS": "0", "keys-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert page.status_code == 200
    assert "a loopback address" in page.content.decode()
    agent.refresh_from_db()
    assert agent.callback_url == "https://a.example/hook"


def test_settings_refuse_a_witness_on_an_internal_address():
    refused = settings_check({"DEBUG": "1", "HITL_LEDGER_WITNESSES": "http://169.254.169.254/h"})
    assert refused.returncode != 0 and "link-local" in refused.stderr
    allowed = settings_check(
        {"DEBUG": "1", "HITL_LEDGER_WITNESSES": "http://127.0.0.1:9/h",
         "HITL_ALLOW_PRIVATE_URLS": "1"}
    )  # fmt: skip
    assert "HITL_LEDGER_WITNESSES" not in allowed.stderr  # (the deploy check warns on DEBUG)


def test_dns_rebinding_reaches_no_internal_receiver(
    resolve_as, inline, make_checkpoint, ops_team, agent, settings
):
    """Each URL was saved while its name resolved to a public address; by the time of the
    send it resolves to the receiver on 127.0.0.1: nothing is sent, the reason is recorded,
    and the delivery is retried later (the name may resolve elsewhere again)."""
    receiver = HttpReceiver()
    try:
        port = receiver.server.server_port
        resolve_as["hooks.rebind.test"] = ["127.0.0.1"]
        url = f"http://hooks.rebind.test:{port}/hook"
        RoleChannel.objects.create(role="ops", kind="webhook", url=url)  # saved back then
        agent.callback_url = url
        agent.save()
        settings.HITL_LEDGER_WITNESSES = [url]

        cp = inline(make_checkpoint)
        inline(checkpoint_decide, cp.pk, ops_team["raj"], "approve")
        sequencer.sequence_pending()
        assert inline(witnesses.publish_due) == 1  # owed, and refused at the send

        assert receiver.requests == []
        for row in (
            Delivery.objects.get(channel="webhook"),
            WebhookDelivery.objects.get(),
            WitnessDelivery.objects.get(),
        ):
            assert (row.status, row.attempts) == ("pending", 1)
            assert "hooks.rebind.test (127.0.0.1) is a loopback address" in row.last_error
        assert "loopback" in WitnessState.objects.get(url=url).last_error
    finally:
        receiver.stop()


def test_it_connects_to_the_address_it_checked(
    resolve_as, inline, make_checkpoint, ops_team, private_urls
):
    """The name is resolved once, for the check; the request goes to that address (with the
    name as Host). Here a second lookup of the name would fail: the delivery still arrives."""
    receiver = HttpReceiver()
    try:
        port = receiver.server.server_port
        answers = resolve_as["pinned.test"] = ["127.0.0.1"]
        RoleChannel.objects.create(role="ops", kind="teams", url=f"http://pinned.test:{port}/t")

        original = socket.getaddrinfo
        lookups: list[str] = []

        def once(host, *args, **kwargs):
            lookups.append(host)
            result = original(host, *args, **kwargs)
            if host == "pinned.test":
                answers.clear()  # from now on the name does not resolve
            return result

        socket.getaddrinfo = once
        try:
            inline(make_checkpoint)
        finally:
            socket.getaddrinfo = original
        [request] = receiver.wait_for(1)
        assert request.headers["Host"] == f"pinned.test:{port}"
        assert lookups.count("pinned.test") == 1
        assert Delivery.objects.get(channel="teams").status == "delivered"
    finally:
        receiver.stop()


def test_a_receivers_answer_is_stored_as_one_bounded_line_of_text(
    inline, make_checkpoint, ops_team, private_urls
):
    receiver = HttpReceiver(statuses=[500], reply=b"\x1b[2J\r\nBOOM\x00 " + b"A" * 1_000_000)
    try:
        RoleChannel.objects.create(role="ops", kind="slack", url=receiver.url)
        inline(make_checkpoint)
        delivery = Delivery.objects.get(channel="slack")
        assert delivery.status == "pending" and delivery.last_status_code == 500
        error = delivery.last_error
        assert error.startswith("HTTP 500: [2J BOOM AAAA")
        assert len(error) <= 520 and error.isprintable()
    finally:
        receiver.stop()
