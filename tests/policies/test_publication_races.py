"""Publish, roll back and revoke of one policy at the same time, with real threads and real
connections (PostgreSQL and the SQLite file database): exactly one move wins, the other gets
a Conflict naming the winner, and the one audit event written says truly what changed
(`version`, `previous`, published vs rolled back).

Every round starts from the same state: version 2 live, version 1 before it, version 3 a
draft. Each caller acts on the policy as it loaded it (two admin pages open at once); a move
decided on a live version that changed meanwhile is refused, so "exactly one winner" holds
for every pair, not only for two publishes of the same version. The forced interleavings
(`race(..., hold=i)`, see tests/test_races.py) make each side of each pair hold the policy
row in turn while the other arrives.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from functools import partial

import httpx
import pytest

from approvals.models import Policy
from approvals.policies import policy_publish, policy_revoke, policy_rollback, policy_save
from audit.events import Actor, verify_ledger
from audit.models import AuditEvent
from core.exceptions import Conflict
from tests.factories import GroupFactory, UserFactory
from tests.test_races import ROUNDS, race

pytestmark = pytest.mark.django_db(transaction=True)

VERBS = ("policy.published", "policy.rolled_back", "policy.revoked")
Move = Callable[[Policy, object], object]


def publish_v3(policy: Policy, user) -> object:
    return policy_publish(policy, user=user, version=policy.versions.get(number=3))


def roll_back_to_v1(policy: Policy, user) -> object:
    return policy_rollback(policy, user=user, version=policy.versions.get(number=1))


def revoke(policy: Policy, user) -> object:
    return policy_revoke(policy, user=user, reason="stop it")


MOVES: dict[str, Move] = {"publish": publish_v3, "rollback": roll_back_to_v1, "revoke": revoke}
# What the winning move leaves: the live version, and the one audit event it writes.
OUTCOMES = {
    "publish": (3, "policy.published", {"version": 3, "previous": 2}),
    "rollback": (1, "policy.rolled_back", {"version": 1, "previous": 2}),
    "revoke": (None, "policy.revoked", {"version": 2, "reason": "stop it"}),
}


@pytest.fixture
def people(db):
    GroupFactory(name="ops")
    author = UserFactory(username="writer", roles=["ops"])
    publishers = []
    for name in ("ada", "bo"):
        user = UserFactory(username=name, roles=["ops"])
        user.is_superuser = True
        user.save()
        publishers.append(user)
    return author, publishers


def v2_live_and_v3_drafted(n: int, author, publisher) -> Policy:
    policy = Policy(name=f"deletes {n}", match_tool="delete_*", stages=[{"role": "ops"}])
    for timeout in (600, 900, 1200):  # versions 1, 2, 3: the first two published
        policy.timeout_seconds = timeout
        policy_save(policy, actor=Actor.for_user(author), by=author)
        if timeout != 1200:
            policy_publish(policy, user=publisher)
    return policy


def moves_after(policy: Policy, mark: int) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            target_type="approvals.policy", target_id=str(policy.pk), verb__in=VERBS, pk__gt=mark
        ).order_by("pk")
    )


def assert_one_winner(results, policy: Policy, names: tuple[str, str], users, mark: int) -> int:
    """The index of the winner, after checking the loser, the policy and the audit event."""
    kinds = [r[0] for r in results]
    assert sorted(kinds) == ["err", "ok"], results
    winner = kinds.index("ok")
    loser = results[1 - winner][1]
    assert isinstance(loser, Conflict), loser
    assert loser.winner == users[winner].get_username(), loser.as_dict()
    assert loser.at is not None
    live, verb, data = OUTCOMES[names[winner]]
    policy.refresh_from_db()
    assert (policy.live_version.number if policy.live_version else None) == live
    events = moves_after(policy, mark)
    assert [(e.verb, {k: e.data.get(k) for k in data}) for e in events] == [(verb, data)]
    assert events[0].actor_label == users[winner].get_username()
    return winner


PAIRS = list(itertools.product(MOVES, repeat=2))


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_one_of_two_moves_on_a_policy_wins_and_the_audit_says_what_it_did(first, second, people):
    author, users = people
    names = (first, second)
    forced = max(ROUNDS // 20, 2)  # per side
    won = {0: 0, 1: 0}
    for n in range(2 * forced + max(ROUNDS // 20, 2)):
        hold = n % 2 if n < 2 * forced else None  # forced rounds first, then free races
        policy = v2_live_and_v3_drafted(n, author, users[0])
        mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
        # Each caller acts on the policy as it loaded it, like two admin pages open at once.
        seen = [Policy.objects.get(pk=policy.pk) for _ in names]
        results = race(*(partial(MOVES[names[i]], seen[i], users[i]) for i in range(2)), hold=hold)
        winner = assert_one_winner(results, policy, names, users, mark)
        if hold is not None:
            assert results.overlapped(), results.spans
            assert winner == hold, (hold, results)  # whoever holds the row wins
        won[winner] += 1
    assert won[0] and won[1]
    assert verify_ledger().ok


# --- through the public port of a running portal -------------------------------------------------


def logged_in(base: str, username: str) -> httpx.Client:
    browser = httpx.Client(base_url=base, timeout=30)
    page = browser.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = browser.post(
        "/accounts/login/",
        data={"csrfmiddlewaretoken": token, "login": username, "password": "pw-for-tests"},
    )
    assert done.status_code == 302, done.text[:500]
    return browser


def submit(browser: httpx.Client, policy: Policy, move: str) -> Callable[[], httpx.Response]:
    """Load the policy's page in this browser; pressing the button of `move` on it."""
    page = browser.get(f"/admin/approvals/policy/{policy.pk}/change/").text
    action = {
        "publish": "publish/",
        "rollback": "rollback/1/",
        "revoke": "revoke/",
    }[move]
    form = re.search(
        rf'<form method="post" action="/admin/approvals/policy/{policy.pk}/{action}".*?</form>',
        page,
        re.S,
    ).group(0)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    assert fields["live"] == "2"  # what the page showed: version 2 live
    if move == "revoke":
        fields["reason"] = "stop it"

    def press() -> httpx.Response:
        return browser.post(form.split('action="')[1].split('"')[0], data=fields)

    return press


def at_once(presses: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(presses))
    responses: list = [None] * len(presses)

    def go(i: int) -> None:
        barrier.wait(timeout=30)
        responses[i] = presses[i]()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(presses))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return responses


@pytest.mark.slow
def test_two_pages_pressing_at_once_one_wins_and_the_other_gets_a_409(live_portal, people):
    """Two publishers with the policy's page open press their buttons at the same instant,
    through the portal's public port: one change is made, the other page answers 409 naming
    the winner, for every pair of buttons."""
    author, users = people
    browsers = [logged_in(live_portal.url, u.get_username()) for u in users]
    try:
        for n, (first, second) in enumerate(PAIRS):
            names = (first, second)
            policy = v2_live_and_v3_drafted(n, author, users[0])
            mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
            responses = at_once([submit(browsers[i], policy, names[i]) for i in range(2)])
            codes = [r.status_code for r in responses]
            assert sorted(codes) == [302, 409], (names, [r.text[:300] for r in responses])
            winner = codes.index(302)
            refused = responses[1 - winner].text
            assert "Someone changed this policy first" in refused
            assert f'class="winner">{users[winner].get_username()}<' in refused
            live, verb, data = OUTCOMES[names[winner]]
            policy.refresh_from_db()
            assert (policy.live_version.number if policy.live_version else None) == live
            events = moves_after(policy, mark)
            assert [(e.verb, {k: e.data.get(k) for k in data}) for e in events] == [(verb, data)]
    finally:
        for browser in browsers:
            browser.close()


def test_a_page_that_shows_another_live_version_changes_nothing(client, people):
    """The `live` field of a page loaded before someone else's publication: 409 naming them,
    and a `live` that is not a version number is not found."""
    author, users = people
    policy = v2_live_and_v3_drafted(0, author, users[0])
    mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    client.force_login(users[1])
    url = f"/admin/approvals/policy/{policy.pk}/"
    assert client.post(url + "publish/", {"version": "3", "live": "x"}).status_code == 404
    stale = client.post(url + "revoke/", {"live": "1", "reason": "stop it"})
    assert stale.status_code == 409
    assert stale.context["conflict"].winner == "ada"  # who published version 2
    assert "version 2 is live" in stale.content.decode()
    policy.refresh_from_db()
    assert policy.live_version.number == 2 and moves_after(policy, mark) == []


def test_someone_who_may_not_publish_is_told_so_even_on_a_stale_page(people):
    """Permission comes before the race: a reviewer without the publish permission is not
    allowed, whatever live version their page showed (not a 409 about someone else)."""
    from core.exceptions import NotAllowed

    author, users = people
    policy = v2_live_and_v3_drafted(0, author, users[0])
    mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    stranger = UserFactory(username="stranger", roles=["ops"])
    for move in (
        lambda: policy_publish(policy, user=stranger, version=policy.versions.get(number=3),
                               seen_live=1),
        lambda: policy_revoke(policy, user=stranger, seen_live=1),
    ):  # fmt: skip
        with pytest.raises(NotAllowed):
            move()
    policy.refresh_from_db()
    assert policy.live_version.number == 2 and moves_after(policy, mark) == []
