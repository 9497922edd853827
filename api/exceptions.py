"""API exceptions of our own (kept free of DRF's views module: the parsers import them while
DRF's settings are being loaded)."""

from __future__ import annotations

from rest_framework import exceptions, status

from core.exceptions import Conflict, Halted


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class IdempotencyMismatch(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request body."
    default_code = "idempotency_key_reused"


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is not in a state that allows this."
    default_code = "conflict"

    def __init__(self, conflict: Conflict):
        # A conflict may name itself more precisely (e.g. "receipt_expired").
        super().__init__(str(conflict), getattr(conflict, "code", None))
        self.conflict = conflict


class AgentHaltedError(exceptions.APIException):
    """423 Locked: the agent was halted (the kill switch); the problem names who, when, why."""

    status_code = status.HTTP_423_LOCKED
    default_detail = "This agent is halted."
    default_code = "agent_halted"

    def __init__(self, halted: Halted):
        super().__init__(str(halted))
        self.halted = halted
