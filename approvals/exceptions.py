"""The errors transitions raise. Views map them: Conflict → 409, NotAllowed → 403/404,
InvalidDecision → 400."""

from __future__ import annotations


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
    """The actor may not do this (wrong role, four-eyes, read-only manager)."""


class InvalidDecision(ValueError):
    """The decision itself is malformed (reject without reason, edit without an action, ...)."""

    def __init__(self, message: str, field: str = "non_field_errors"):
        super().__init__(message)
        self.field = field
