"""Result objects: a Run, a Checkpoint (with its decision), a Rejection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hitl_client.errors import ApprovalRejected

if TYPE_CHECKING:
    from hitl_client.client import HitlClient

RESOLVED = ("approved", "rejected", "answered", "expired", "cancelled")


class _Resource:
    """What the portal said about one object (its JSON), with the fields every object has."""

    data: dict[str, Any]

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def status(self) -> str:
        return self.data["status"]


class Checkpoint(_Resource):
    """A request for a human, as the portal last described it. `wait()` refreshes it."""

    def __init__(self, client: HitlClient, data: dict[str, Any]):
        self._client = client
        self.data: dict[str, Any] = data

    def __repr__(self) -> str:
        return f"<Checkpoint {self.id} {self.status} {self.title!r}>"

    @property
    def title(self) -> str:
        return self.data.get("title", "")

    @property
    def review_url(self) -> str:
        return self.data.get("review_url", "")

    @property
    def decision(self) -> dict[str, Any] | None:
        return self.data.get("decision")

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @property
    def rejected(self) -> bool:
        return self.status in ("rejected", "expired", "cancelled")

    @property
    def answer(self) -> str | None:
        return (self.decision or {}).get("answer")

    @property
    def reason(self) -> str:
        """The reviewer's comment (why it was rejected, or a note with an approval)."""
        return (self.decision or {}).get("comment") or ""

    @property
    def approved_action(self) -> dict[str, Any] | None:
        """The action as approved: possibly edited by the reviewer. Run this, not the
        original proposal."""
        return (self.decision or {}).get("action")

    @property
    def approved_args(self) -> dict[str, Any] | None:
        action = self.approved_action
        return None if action is None else dict(action.get("args") or {})

    @property
    def automatic(self) -> bool:
        """Decided by a policy (an auto-approve or auto-reject rule), not a person."""
        return bool((self.decision or {}).get("automatic"))

    @property
    def decided_by(self) -> str | None:
        """Who decided: a username, or "policy <name> v<n>" for an automatic decision."""
        decision = self.decision or {}
        policy = decision.get("decided_by_policy")
        if policy:
            return f"policy {policy['name']} v{policy['version']}"
        return decision.get("decided_by")

    @property
    def receipt(self) -> str | None:
        """An approval's signed, single-use receipt: redeem it right before acting
        (`client.redeem(cp.receipt, tool=..., args=...)`; the decorator does it for you)."""
        return (self.decision or {}).get("receipt")

    @property
    def ledger_seq(self) -> int | None:
        """The decision's place in the portal's audit ledger."""
        return ((self.decision or {}).get("ledger") or {}).get("seq")

    @property
    def edited(self) -> bool:
        return (self.decision or {}).get("outcome") == "modify"

    def refresh(self) -> Checkpoint:
        self.data = self._client.get_checkpoint(self.id).data
        return self

    def wait(self, timeout: float | None = None) -> Checkpoint:
        """Block until decided (or `timeout` seconds; None waits until the checkpoint's own
        deadline, after which the portal expires it). Returns self, updated."""
        self.data = self._client.wait(self.id, timeout=timeout).data
        return self

    async def wait_async(self, timeout: float | None = None) -> Checkpoint:
        self.data = (await self._client.await_checkpoint(self.id, timeout=timeout)).data
        return self

    def cancel(self, reason: str = "") -> Checkpoint:
        self.data = self._client.cancel(self.id, reason=reason).data
        return self

    def raise_for_outcome(self) -> Checkpoint:
        """Raise ApprovalRejected unless approved or answered."""
        if self.status in ("approved", "answered"):
            return self
        if self.pending:
            raise ApprovalRejected(self, "still pending", "pending")
        raise ApprovalRejected(self, self.reason or self.status, self.status)


@dataclass
class Run(_Resource):
    data: dict[str, Any]


@dataclass
class Rejection:
    """What a `require_approval` tool returns instead of running when `on_reject="return"`:
    falsy, and its str() is a sentence to hand back to the model."""

    status: str
    reason: str
    checkpoint: Checkpoint | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        what = {"expired": "nobody approved it in time", "cancelled": "it was withdrawn"}.get(
            self.status, "a human reviewer rejected it"
        )
        return f"Not done: {what}." + (f" Reason: {self.reason}" if self.reason else "")
