"""One artifact → what the review page shows: a rendered body (or an image, or only a
download link), with truncation for big ones."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.utils.safestring import SafeString

from approvals.artifacts import EDITABLE_KINDS, INLINE_IMAGE_TYPES, artifact_text
from approvals.edits import unified
from approvals.models import Artifact
from approvals.rendering import diff as diffs
from approvals.rendering import text


@dataclass
class RenderedArtifact:
    artifact: Artifact
    mode: str  # diff, log, file, json, markdown, image, binary, empty
    body: SafeString | None = None
    files: list[dict] = field(default_factory=list)  # diffs: per-file sections
    truncated: bool = False
    note: str = ""
    editable: bool = False
    source: str = ""  # the full text, for the review-kind editor

    @property
    def additions(self) -> int:
        return sum(f["file"].additions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f["file"].deletions for f in self.files)


def _read(artifact: Artifact, limit: int) -> tuple[str | None, bool]:
    """(text, truncated); None for binary content."""
    truncated = artifact.size > limit
    try:
        if artifact.inline or not artifact.file:
            raw = artifact.inline[:limit].encode()
        else:
            with artifact.file.open("rb") as fh:
                raw = fh.read(limit)
    except (OSError, ValueError):
        return "", False
    if b"\x00" in raw[:8192]:
        return None, truncated
    decoded = raw.decode("utf-8", errors="replace")
    if truncated and "\n" in decoded:
        decoded = decoded[: decoded.rfind("\n")]  # never show half a line
    return decoded, truncated


def render(artifact: Artifact, *, editable: bool = False) -> RenderedArtifact:
    limit = settings.HITL_ARTIFACT_RENDER_LIMIT
    kind = artifact.kind
    if kind == Artifact.Kind.IMAGE or artifact.content_type.startswith("image/"):
        if artifact.content_type in INLINE_IMAGE_TYPES and artifact.size <= 10 * limit:
            return RenderedArtifact(artifact, "image")
        return RenderedArtifact(artifact, "binary", note="This image type is not shown inline.")
    content, truncated = _read(artifact, limit)
    if content is None:
        return RenderedArtifact(artifact, "binary", note="Binary content.")
    if not content:
        return RenderedArtifact(artifact, "empty")
    result = RenderedArtifact(artifact, kind, truncated=truncated)
    if editable and kind in EDITABLE_KINDS and not truncated:
        result.editable = True
        result.source = content
    if kind == Artifact.Kind.DIFF:
        files = diffs.parse(content)
        if not files:
            result.mode, result.body = "file", text.file_html(content, "x.diff")
            return result
        diffs.highlight(files)
        result.files = [
            {"file": f, "unified": diffs.unified_html(f), "split": diffs.split_html(f)}
            for f in files
        ]
        return result
    if kind == Artifact.Kind.LOG:
        result.body = text.log_html(content)
    elif kind == Artifact.Kind.JSON and not truncated:
        result.body, result.note = text.json_html(content)
    elif kind == Artifact.Kind.MARKDOWN and not truncated:
        result.body = text.markdown_html(content)
    else:
        result.mode = "file"
        result.body = text.file_html(content, artifact.name)
    return result


def edit_diff(original: Artifact, edited: Artifact) -> list[dict]:
    """The reviewer's edit of an artifact as rendered diff sections (original → edited)."""

    patch = unified(
        artifact_text(original), artifact_text(edited), f"a/{original.name}", f"b/{edited.name}"
    )
    files = diffs.parse(patch)
    diffs.highlight(files)
    return [
        {"file": f, "unified": diffs.unified_html(f), "split": diffs.split_html(f)} for f in files
    ]
