"""Helpers for the integration tests: run a blocking client call in a thread while the test
plays the reviewer, find the checkpoint it created, and decide it through the portal's API."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from approvals.models import Checkpoint
from approvals.services import USER_TOKENS, user_token_create


class Result:
    def __init__(self):
        self._box: queue.Queue = queue.Queue()

    def get(self, timeout: float = 60) -> Any:
        ok, value = self._box.get(timeout=timeout)
        if not ok:
            raise value
        return value


def run_in_thread(fn: Callable, *args, **kwargs) -> Result:
    result = Result()

    def target():
        try:
            result._box.put((True, fn(*args, **kwargs)))
        except BaseException as exc:  # handed to the test
            result._box.put((False, exc))

    threading.Thread(target=target, daemon=True).start()
    return result


def wait_for_checkpoint(*, exclude=(), timeout: float = 30, **filters) -> Checkpoint:
    """The next checkpoint the client created (not in `exclude`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cp = (
            Checkpoint.objects.filter(**filters)
            .exclude(pk__in=list(exclude))
            .order_by("created_at")
            .first()
        )
        if cp is not None:
            return cp
        time.sleep(0.05)
    raise AssertionError("the client never created a checkpoint")


_tokens: dict[int, str] = {}


def token_for(user) -> str:
    if user.pk not in _tokens or not USER_TOKENS.authenticate(_tokens[user.pk]):
        _tokens[user.pk] = user_token_create(user, scope="decide")
    return _tokens[user.pk]


def decide(portal, user, cp, outcome: str, *, expect: int = 200, args=None, **body) -> dict:
    """A reviewer decides through the portal's REST API (`POST /checkpoints/{id}/decision/`)."""
    payload: dict[str, Any] = {"outcome": outcome, **body}
    if args is not None:
        payload["action"] = {"args": args}
    response = httpx.post(
        f"{portal.url}/api/v1/checkpoints/{cp.pk}/decision/",
        json=payload,
        headers={"Authorization": f"Bearer {token_for(user)}"},
        timeout=30,
    )
    assert response.status_code == expect, response.text
    return response.json()
