"""The errors services and transitions raise. Every edge maps them the same way:
Conflict → 409 (or a "someone else decided" page), NotAllowed → 403/404,
InvalidInput → 400 with field errors."""

from __future__ import annotations

from typing import Any


class Conflict(Exception):
    """The object is not in a state that allows this move; someone or something else won.

    `status` is the state found, `winner` who or what put it there (a username, "expiry",
    "agent:<slug>", ...), `at` when.
    """

    def __init__(self, message: str, *, status: str = "", winner: str = "", at=None):
        super().__init__(message)
        self.status = status
        self.winner = winner
        self.at = at

    def as_dict(self) -> dict:
        return {
            "detail": str(self),
            "status": self.status,
            "winner": self.winner,
            "at": self.at.isoformat() if self.at else None,
        }


class NotAllowed(Exception):
    """The actor may not do this (wrong role, four-eyes, read-only manager). `code` tells a
    program why (the API's problem `code`), e.g. "step_up_required"."""

    code = "permission_denied"

    def __init__(self, message: str = "", *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class InvalidInput(ValueError):
    """The request itself is malformed (a rejection without a reason, an edit without an
    action, an artifact reference that is not yours, ...).

    `field` names the input at fault; `detail` optionally gives the per-field structure for
    nested input (e.g. one entry per artifact), shown as the field's errors. `code` is the
    machine-readable reason the API reports (`invalid`, `outcome_not_allowed`, ...)."""

    def __init__(
        self,
        message: str,
        field: str = "non_field_errors",
        *,
        detail: Any = None,
        code: str = "invalid",
    ):
        super().__init__(message)
        self.field = field
        self.detail = detail
        self.code = code

    def errors(self) -> dict[str, Any]:
        return {self.field: self.detail if self.detail is not None else [str(self)]}


class Halted(Exception):
    """The agent was halted (the kill switch): nothing it asks for is done until it is
    resumed. Edges answer 423 Locked naming who halted it, when and why."""

    def __init__(self, message: str, *, agent: str = "", by: str = "", at=None, reason: str = ""):
        super().__init__(message)
        self.agent = agent
        self.by = by
        self.at = at
        self.reason = reason

    @classmethod
    def for_agent(cls, agent) -> Halted:
        by = agent.halted_by.get_username() if agent.halted_by_id else "an operator"
        return cls(
            f"Agent {agent.slug} was halted by {by}: {agent.halt_reason}",
            agent=agent.slug,
            by=by,
            at=agent.halted_at,
            reason=agent.halt_reason,
        )
