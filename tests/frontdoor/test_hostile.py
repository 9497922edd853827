"""What an outside attacker found at the front doors (runportal and nginx), through their
public ports: every refusal reaches the client as the portal's own status, never a 5xx, a
gateway error or a broken connection."""

from __future__ import annotations

from collections import Counter

import pytest

from agents.models import Run
from tests.frontdoor.conftest import Front

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _post(front: Front, path: str, body: bytes, headers: dict[str, str]) -> int | str:
    try:
        with front.client(headers=headers) as client:  # a new connection each time
            return client.post(path, content=body).status_code
    except Exception as exc:  # a reset or a truncated answer is a finding too
        return type(exc).__name__


def test_it_answers_a_body_it_refuses_unread_with_its_own_status(front, agent_key):
    # The portal answers these without reading the body: no credentials (401), a declared
    # length over the API's limit (413), a form without a CSRF token (403). Behind nginx, the
    # WSGI server used to close the connection with the body unread while nginx was still
    # sending it: nginx then answered 502 (about one request in six).
    json = {"Content-Type": "application/json"}
    agent = {**json, "Authorization": f"Bearer {agent_key}"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    under, over = b"a" * (2 * MiB - 64 * 1024), b"a" * (2 * MiB + 256 * 1024)
    cases = [
        ("/api/v1/runs/", under, json, 401),
        ("/api/v1/runs/", over, agent, 413),
        ("/accounts/login/", over, form, 403),
    ]
    for path, body, headers, expected in cases:
        statuses = Counter(_post(front, path, body, headers) for _ in range(25))
        assert statuses == {expected: 25}, (path, expected, statuses)
    assert not Run.objects.exists()
