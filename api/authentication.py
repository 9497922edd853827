"""`Authorization: Bearer <token>`: agent API keys (`hitl_a…`) and reviewers' personal tokens
(`hitl_u…`). Both are stored as prefix + sha256 (see core/tokens.py); a revoked or
unknown token is a 401, never a fall-through to another scheme."""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from agents.models import Agent, AgentKey
from agents.services import AGENT_KEYS
from api.exceptions import AgentHaltedError
from approvals.services import USER_TOKENS
from core.exceptions import Halted


@dataclass
class AgentPrincipal:
    """`request.user` for a request made with an agent key. Not a Django user: code that
    needs a human (reviewing, deciding) checks `is_agent` and refuses."""

    agent: Agent
    key: AgentKey
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    is_agent: bool = True
    is_superuser: bool = False
    pk: None = None

    def get_username(self) -> str:
        return f"agent:{self.agent.slug}"

    def __str__(self) -> str:
        return self.get_username()


def authenticate_bearer(token: str):
    """(principal, credential) for a raw bearer token, or None. Shared by DRF and the ASGI
    long-poll path. A halted agent's key authenticates, and is then refused: 423 naming who
    halted it and why (the one check of the kill switch at the API: every agent call, long-
    poll included, comes through here)."""
    # The kind letter (hitl_a… / hitl_u…) says which table to look in: one query, not two.
    key = None if token.startswith("hitl_u") else AGENT_KEYS.authenticate(token)
    if key is not None:
        if key.agent.halted_at is not None:
            raise AgentHaltedError(Halted.for_agent(key.agent))
        return AgentPrincipal(agent=key.agent, key=key), key
    user_token = None if token.startswith("hitl_a") else USER_TOKENS.authenticate(token)
    if user_token is not None:
        return user_token.user, user_token
    return None


class BearerAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header; use 'Bearer <token>'."
            )
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        result = authenticate_bearer(token)
        if result is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
        return result

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="hitl"'


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = BearerAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An agent API key (`createagent`) or a reviewer's personal token "
            "(`createusertoken`): `hitl_<prefix>_<secret>`.",
        }


def is_agent(user) -> bool:
    return bool(getattr(user, "is_agent", False))
