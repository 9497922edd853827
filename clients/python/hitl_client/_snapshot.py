"""A paused agent run kept in the portal: the checkpoints of one pause, the first of which
holds the run's serialized state (a `json` artifact) with its sha256 in every checkpoint's
context, and the integrity-checked load of that state. The OpenAI Agents and pydantic-ai
adapters pause this way."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from hitl_client._transport import Call, Flow, _Steps
from hitl_client.errors import HitlError
from hitl_client.models import Checkpoint

if TYPE_CHECKING:
    from hitl_client.client import HitlClient

INLINE_LIMIT = 1_500_000  # bytes; bigger snapshots are uploaded (the API takes 2 MiB bodies)


def _artifact(client: HitlClient, name: str, text: str) -> dict:
    if len(text.encode()) <= INLINE_LIMIT:
        return {"name": name, "kind": "json", "content": text}
    uploaded = client.upload_artifact(text.encode(), name=name, kind="json")
    return {"name": name, "kind": "json", "ref": uploaded["ref"]}


def submit_pause(
    client: HitlClient,
    source: str,
    snapshot: tuple[str, str],
    requests: list[tuple[str, dict, dict]],
) -> list[Checkpoint]:
    """One checkpoint per `(external_id, context, request_approval keywords)`, the first
    holding `snapshot` (name, text). A request submitted before is found by its id and
    returned as it is (a serialized state differs from one serialization to the next, so a
    repeat cannot be recognized by its body)."""
    name, text = snapshot
    digest = hashlib.sha256(text.encode()).hexdigest()
    checkpoints: list[Checkpoint] = []
    holder: str | None = None
    for external_id, context, fields in requests:
        existing = client.find_checkpoint(external_id)
        if existing is not None:
            holder = holder or existing.id
            checkpoints.append(existing)
            continue
        context = {**context, "snapshot_sha256": digest}
        if holder:
            context["snapshot_checkpoint"] = holder
        cp = client.request_approval(
            **fields,
            context={source: context},
            source=source,
            external_id=external_id,
            artifacts=None if holder else [_artifact(client, name, text)],
        )
        holder = holder or cp.id
        checkpoints.append(cp)
    return checkpoints


def _load(cp: Checkpoint, source: str, name: str) -> Flow[bytes]:
    context: dict[str, Any] = (cp.data.get("context") or {}).get(source) or {}
    holder_id = context.get("snapshot_checkpoint") or cp.id
    holder = yield Call("GET", f"checkpoints/{holder_id}/")
    found = [a for a in holder.get("artifacts", []) if a.get("name") == name]
    if not found:
        raise HitlError(f"checkpoint {holder_id} has no stored {name}")
    content = yield Call("GET", f"artifacts/{found[0]['id']}/content/", {"raw": True})
    if hashlib.sha256(content).hexdigest() != context.get("snapshot_sha256"):
        raise HitlError(f"the stored {name} does not match its sha256: refusing to load it")
    return content


def load_snapshot(client: HitlClient, cp: Checkpoint, source: str, name: str) -> bytes:
    """The pause's stored state, from the portal, refused if its digest differs."""
    steps = _Steps(_load(cp, source, name))
    for call in steps:
        steps.result = client.request(call.method, call.path, **call.options)
    return steps.value


async def aload_snapshot(client: HitlClient, cp: Checkpoint, source: str, name: str) -> bytes:
    """`load_snapshot`, awaited."""
    steps = _Steps(_load(cp, source, name))
    for call in steps:
        steps.result = await client.arequest(call.method, call.path, **call.options)
    return steps.value
