"""Reviewers' edits: of a proposed action's arguments ("approve with edits") and of a
`review` checkpoint's artifacts (the draft itself). Pure helpers used by
`approvals.transitions.checkpoint_decide`; nothing here writes outside its caller's
transaction."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.files.base import ContentFile

from approvals.exceptions import InvalidDecision
from approvals.models import Artifact, Checkpoint

# Edited artifacts up to this size stay inline (same limit as the agent's own artifacts).
INLINE_LIMIT = 256 * 1024
# Diffs kept in the audit trail are capped; the full versions are stored as artifacts.
AUDIT_DIFF_LIMIT = 64 * 1024
EDITABLE_KINDS = {
    Artifact.Kind.DIFF,
    Artifact.Kind.LOG,
    Artifact.Kind.FILE,
    Artifact.Kind.JSON,
    Artifact.Kind.MARKDOWN,
}


@dataclass
class ArtifactEdit:
    """The reviewer's new text for one of the checkpoint's artifacts."""

    original_id: Any
    content: str


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def unified(old: str, new: str, old_name: str, new_name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    # Lines without a trailing newline would glue onto the next one.
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def action_diff(original: dict | None, edited: dict | None) -> str:
    """The original → edited action as a unified diff of pretty JSON (what reviewers saw)."""
    return unified(pretty_json(original or {}), pretty_json(edited or {}), "proposed", "edited")


def cap(text: str, limit: int = AUDIT_DIFF_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... truncated ({len(text) - limit} more characters)\n"


def artifact_text(artifact: Artifact, limit: int | None = None) -> str:
    """The artifact's content as text (inline or from storage), optionally only a prefix."""
    if artifact.inline or not artifact.file:
        return artifact.inline if limit is None else artifact.inline[:limit]
    with artifact.file.open("rb") as fh:
        raw = fh.read() if limit is None else fh.read(limit)
    return raw.decode("utf-8", errors="replace")


def build_edited_artifacts(
    cp: Checkpoint, edits: list[ArtifactEdit]
) -> tuple[list[Artifact], list[dict]]:
    """Unsaved Artifact rows for the edited versions (edited_from → the original) and a
    summary for the action and the audit trail. Raises InvalidDecision on bad input."""
    if cp.kind != Checkpoint.Kind.REVIEW:
        raise InvalidDecision("Only review checkpoints take edited artifacts", "artifacts")
    originals = {str(a.pk): a for a in Artifact.objects.filter(checkpoint=cp)}
    new_rows: list[Artifact] = []
    summary: list[dict] = []
    seen: set[str] = set()
    for edit in edits:
        original = originals.get(str(edit.original_id))
        if original is None:
            raise InvalidDecision("No such artifact on this checkpoint", "artifacts")
        if str(original.pk) in seen:
            raise InvalidDecision(f"{original.name} is edited twice", "artifacts")
        seen.add(str(original.pk))
        if original.kind not in EDITABLE_KINDS:
            raise InvalidDecision(
                f"{original.name} ({original.kind}) cannot be edited", "artifacts"
            )
        if not isinstance(edit.content, str):
            raise InvalidDecision("Edited content must be text", "artifacts")
        old = artifact_text(original)
        new = edit.content.replace("\r\n", "\n")
        if new == old:
            raise InvalidDecision(f"{original.name} is unchanged", "artifacts")
        raw = new.encode()
        row = Artifact(
            checkpoint=cp,
            agent_id=cp.agent_id,
            name=original.name,
            kind=original.kind,
            content_type=original.content_type,
            sha256=hashlib.sha256(raw).hexdigest(),
            size=len(raw),
            edited_from=original,
        )
        if len(raw) <= INLINE_LIMIT:
            row.inline = new
        else:
            row._hitl_content = new  # type: ignore[attr-defined]
        new_rows.append(row)
        summary.append(
            {
                "name": original.name,
                "original": original.ref,
                "original_sha256": original.sha256,
                "ref": row.ref,
                "sha256": row.sha256,
                "diff": unified(old, new, f"a/{original.name}", f"b/{original.name}"),
            }
        )
    if not summary:
        raise InvalidDecision("No edited artifact given", "artifacts")
    return new_rows, summary


def store_edited_artifacts(rows: list[Artifact]) -> None:
    """Save rows from `build_edited_artifacts` (inside the decision's transaction)."""
    for row in rows:
        if not row.inline:
            content = row._hitl_content  # type: ignore[attr-defined]
            row.file.save(row.name or "artifact", ContentFile(content.encode()), save=False)
        row.save()


def substitute_refs(value: Any, mapping: dict[str, str]) -> Any:
    """Point references to an edited artifact (`artifact://<original>`) at the edited version,
    so an action that names its draft by ref runs with the reviewer's version."""
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [substitute_refs(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: substitute_refs(v, mapping) for k, v in value.items()}
    return value
