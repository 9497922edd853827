"""Who may call what: agents (API key) vs humans (session or personal token)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from agents.api.authentication import is_agent


class IsAgent(BasePermission):
    message = "This endpoint is for agents: authenticate with an agent API key."

    def has_permission(self, request, view) -> bool:
        return is_agent(request.user)


class IsHuman(BasePermission):
    message = "This endpoint is for people: use a session or a personal API token."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and not is_agent(user) and user.is_active)


class IsAgentOrHuman(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)
