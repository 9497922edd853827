"""An agent's `action.args_schema` is hostile input, sent through the portal's public port as an
outsider sends it: a catastrophic-backtracking pattern cannot stall a decision or the review
page's live preview (patterns run on RE2), a pattern RE2 cannot run and an oversized or too
deep schema are refused at create with a 400 naming the field, and the work one check of an
edit may do is bounded (`HITL_ARGS_SCHEMA_CHECK_BUDGET`)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from approvals.models import Checkpoint, Decision
from approvals.services import user_token_create

PASSWORD = "pw-for-tests"  # tests/factories.py
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CATASTROPHIC = "^(a+)+$"  # Python's `re` backtracks 2^n ways on "a" * n + "!"
HOSTILE = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "pattern": CATASTROPHIC},
        "note": {"type": "string"},
    },
}
EVIL = "a" * 40 + "!"


class Outsider:
    """An HTTP client of the live portal (no test client, no shared state)."""

    def __init__(self, portal, token: str | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Longer than the tests' own timeout: on a stalled portal the test fails, not httpx.
        self.http = httpx.Client(base_url=portal.url, headers=headers, timeout=600)

    def create(self, args: dict, schema: dict) -> httpx.Response:
        run = self.http.post("/api/v1/runs/", json={"task": "label things"})
        assert run.status_code == 201, run.text
        return self.http.post(
            "/api/v1/checkpoints/",
            json={
                "run": run.json()["id"],
                "title": "Label the ticket",
                "action": {"tool": "label", "args": args, "args_schema": schema},
            },
        )


def login(portal, username: str) -> httpx.Client:
    """A browser session on the live portal: the login form, its CSRF token, the cookie."""
    browser = httpx.Client(base_url=portal.url, timeout=600)
    page = browser.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = browser.post(
        "/accounts/login/",
        data={"login": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{portal.url}/accounts/login/"},
    )
    assert done.status_code == 302, done.text
    return browser


@pytest.mark.timeout(120)
def test_a_catastrophic_pattern_answers_on_approve_with_edits_and_the_preview(
    live_portal, agent_key, reviewer
):
    agent = Outsider(live_portal, agent_key)
    created = agent.create({"label": EVIL, "note": ""}, HOSTILE)
    assert created.status_code == 201, created.text
    cp = created.json()["id"]
    person = Outsider(live_portal, user_token_create(reviewer, name="t", scope="decide"))

    # The reviewer edits the note; the agent's label, untouched, is checked too, and fails.
    edited = {"outcome": "modify", "action": {"args": {"label": EVIL, "note": "checked"}}}
    refused = person.http.post(f"/api/v1/checkpoints/{cp}/decision/", json=edited)
    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"]["action"]["args"] == {
        "label": [f"{EVIL!r} does not match {CATASTROPHIC!r}"]
    }

    browser = login(live_portal, reviewer.username)
    preview = browser.post(
        f"/admin/approvals/checkpoint/{cp}/preview-edit/",
        data={"action_args": json.dumps(edited["action"]["args"])},
        headers={"X-CSRFToken": browser.cookies["csrftoken"]},
    )
    assert preview.status_code == 400, preview.text
    assert preview.json()["errors"]["action_args"] == [
        f"label: {EVIL!r} does not match {CATASTROPHIC!r}"
    ]
    assert not Decision.objects.exists()

    fits = {"outcome": "modify", "action": {"args": {"label": "a" * 40, "note": "checked"}}}
    ok = person.http.post(f"/api/v1/checkpoints/{cp}/decision/", json=fits)
    assert ok.status_code == 200, ok.text
    assert Decision.objects.get().edited_action["args"] == {"label": "a" * 40, "note": "checked"}


@pytest.mark.parametrize(
    ("schema", "pointer"),
    [
        ({"properties": {"label": {"pattern": r"^(a)\1$"}}}, "/properties/label/pattern"),
        ({"patternProperties": {"^(?=x)": {}}}, "/patternProperties/^(?=x)"),
        ({"propertyNames": {"pattern": "(?<!a)b"}}, "/propertyNames/pattern"),
        (
            {"$defs": {"t": {"items": {"pattern": r"(\w)\1"}}}, "$ref": "#/$defs/t"},
            "/$defs/t/items/pattern",
        ),
    ],
)
def test_it_refuses_a_pattern_re2_cannot_run_at_create(live_portal, agent_key, schema, pointer):
    refused = Outsider(live_portal, agent_key).create({"label": "x"}, schema)
    assert refused.status_code == 400, refused.text
    (message,) = refused.json()["errors"]["action"]["args_schema"]
    assert pointer in message and "RE2" in message
    assert not Checkpoint.objects.exists()


def nested(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "object", "description": "x" * 70_000}, "bytes"),
        (nested(12), "levels deep"),  # 25 levels of JSON (the API's body limit is 32)
        (
            {"properties": {f"p{i}": {"pattern": f"^p{i}$"} for i in range(101)}},
            "more than 100 patterns",
        ),
    ],
)
def test_it_refuses_an_oversized_or_too_deep_schema_at_create(live_portal, agent_key, schema, says):
    refused = Outsider(live_portal, agent_key).create({}, schema)
    assert refused.status_code == 400, refused.text
    (message,) = refused.json()["errors"]["action"]["args_schema"]
    assert says in message
    assert not Checkpoint.objects.exists()


def test_a_schema_within_the_bounds_is_taken(live_portal, agent_key):
    schema = nested(9)
    schema["properties"].update({f"p{i}": {"pattern": f"^p{i}$"} for i in range(99)})
    created = Outsider(live_portal, agent_key).create({}, schema)
    assert created.status_code == 201, created.text
    assert Checkpoint.objects.get().action["args_schema"] == schema
