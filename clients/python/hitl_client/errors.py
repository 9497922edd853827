"""Exceptions raised by the client. Every HTTP error carries the server's problem details."""

from __future__ import annotations

from typing import Any


class HitlError(Exception):
    """Any failure talking to the portal (network, HTTP error, unexpected response)."""


class IncompatibleServer(HitlError):
    """The portal's API version is not one this client can speak (docs/client.md, "Versions").
    Raised on first contact, before any request that could change something."""

    def __init__(self, url: str, problem: str, server_version: str | None, api_version: str | None):
        self.url = url
        self.server_version = server_version
        self.api_version = api_version
        super().__init__(f"{url}: {problem}")


class ApiError(HitlError):
    def __init__(self, status: int, problem: dict[str, Any] | None, text: str = ""):
        self.status = status
        self.problem = problem or {}
        self.code = self.problem.get("code", "")
        self.detail = self.problem.get("detail") or text or f"HTTP {status}"
        self.errors = self.problem.get("errors")
        super().__init__(f"{status} {self.code}: {self.detail}".strip())


class NotFound(ApiError):
    pass


class ConflictError(ApiError):
    """409: already decided / finished; `winner` says who or what got there first."""

    @property
    def winner(self) -> str | None:
        return self.problem.get("winner")

    @property
    def current_status(self) -> str | None:
        return self.problem.get("current_status")


class ApprovalRejected(HitlError):
    """A human said no (or nobody answered in time). `reason` is what to tell the model:
    the reviewer's comment, or why it expired."""

    def __init__(self, checkpoint, reason: str, status: str):
        self.checkpoint = checkpoint
        self.reason = reason
        self.status = status
        super().__init__(f"{status}: {reason}" if reason else status)


class WaitTimeout(HitlError):
    """The checkpoint was still pending when the caller's own timeout ran out."""

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint
        super().__init__(f"checkpoint {checkpoint.id} still pending")
