"""Who may call what: agents (an API key) and people (a session or a personal token). Every
view names one of these; nothing else checks "is this an agent"."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from api.authentication import is_agent


class IsAgent(BasePermission):
    message = "This endpoint is for agents: authenticate with an agent API key."

    def has_permission(self, request, view) -> bool:
        return is_agent(request.user)


class IsPerson(BasePermission):
    """A real, active user (not an agent key)."""

    message = "This endpoint is for people: use a session or a personal API token."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and not is_agent(user))


class IsAgentOrPerson(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)
