"""Policies: routing a request to who must review it, how many approvals, until when.
(Later: validated, versioned, audited policy changes.)

The active policies are read once per process and kept for HITL_POLICY_CACHE_SECONDS: every
create needs them, they change rarely. A change made in this process (admin, seed_demo)
clears the cache at once; other processes see it within that many seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from approvals.models import ExpiryAction, Policy


@dataclass
class Route:
    stages: list[dict]
    timeout_seconds: int
    expiry_action: str
    escalation_role: str = ""
    escalation_timeout_seconds: int = 1800
    sla_seconds: int | None = None
    policy: Policy | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def roles(self) -> list[str]:
        return [s["role"] for s in self.stages]


_cache: dict[str, tuple[float, list[Policy]]] = {}


def active_policies() -> list[Policy]:
    cached = _cache.get("active")
    if cached is not None and time.monotonic() - cached[0] < settings.HITL_POLICY_CACHE_SECONDS:
        return cached[1]
    policies = list(Policy.objects.filter(active=True).order_by("priority", "id"))
    _cache["active"] = (time.monotonic(), policies)
    return policies


@receiver([post_save, post_delete], sender=Policy, dispatch_uid="approvals.policy_cache")
def forget_policies(**kwargs) -> None:
    _cache.clear()


def route(*, agent_slug: str, tool: str, kind: str, risk: str, role_hint: str = "") -> Route:
    """The first active policy (by priority, then id) that matches decides; no match: the
    default role and timeout. A role hint naming an existing role adds a stage."""
    policy = next(
        (
            p
            for p in active_policies()
            if p.matches(agent_slug=agent_slug, tool=tool, kind=kind, risk=risk) and p.stages
        ),
        None,
    )
    if policy is not None:
        result = Route(
            stages=[
                {"role": s["role"], "approvals": int(s.get("approvals", 1))} for s in policy.stages
            ],
            timeout_seconds=policy.timeout_seconds,
            expiry_action=policy.expiry_action,
            escalation_role=policy.escalation_role,
            escalation_timeout_seconds=policy.escalation_timeout_seconds,
            sla_seconds=policy.sla_seconds,
            policy=policy,
            notes=[f"routed by policy {policy.name!r}"],
        )
    else:
        result = Route(
            stages=[{"role": settings.HITL_DEFAULT_ROLE, "approvals": 1}],
            timeout_seconds=settings.HITL_DEFAULT_TIMEOUT,
            expiry_action=ExpiryAction.REJECT,
            notes=["no policy matched: default role and timeout"],
        )
    # A hint can only add review, never replace what policy requires.
    if (
        role_hint
        and role_hint not in result.roles
        and Group.objects.filter(name=role_hint).exists()
    ):
        result.stages.append({"role": role_hint, "approvals": 1})
        result.notes.append(f"role hint {role_hint!r} added as an extra stage")
    return result
