"""Rate limits per agent key and per user: a fixed one-minute window counted in a cache.

With Redis (`REDIS_URL`) the counters are shared by every web process; without it they are
per process (a local-memory cache), which still stops a runaway agent loop without putting a
database write on every request."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

from api.authentication import is_agent
from core.clientip import client_ip


def _parse_rate(rate: str | None) -> tuple[int, int] | None:
    if not rate:
        return None
    num, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[:1].lower()]
    return int(num), seconds


def hit(ident: str, rate: str | None) -> float | None:
    """Count one request for `ident`; None if allowed, else seconds until the window ends."""
    parsed = _parse_rate(rate)
    if parsed is None:
        return None
    limit, period = parsed
    now = time.time()
    window = int(now // period)
    key = f"hitl-throttle:{ident}:{window}"
    cache = caches[settings.HITL_API_THROTTLE_CACHE]
    cache.add(key, 0, timeout=period + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=period + 1)
        count = 1
    if count > limit:
        return (window + 1) * period - now
    return None


def identity(user) -> tuple[str, str | None]:
    if is_agent(user):
        return f"agent-key:{user.key.pk}", settings.HITL_API_THROTTLE_AGENT
    return f"user:{user.pk}", settings.HITL_API_THROTTLE_USER


class CredentialRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            ident = f"anon:{client_ip(request.META)}"
            rate = settings.HITL_API_THROTTLE_ANON
        else:
            ident, rate = identity(user)
        self._wait = hit(ident, rate)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
