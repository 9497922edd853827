"""Artifacts: what an agent shows a reviewer (diffs, logs, files, JSON, markdown, images).

One place creates them (`artifact_create`: sha256, size, content type, inline or in storage,
used by checkpoint requests, API uploads and reviewers' edits), one place serves them
(`artifact_response`: the review page's download and the API's), one limit decides inline vs
storage. Nothing here opens a transaction: callers create artifacts inside theirs.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, HttpResponse
from django.utils.http import content_disposition_header

from approvals.edits import unified
from approvals.models import Artifact, Checkpoint
from core.canonical import check_storable_text
from core.exceptions import InvalidInput

# Text artifacts up to this size are kept inline in the row; bigger ones (and all binary
# content) go to Django's storage.
INLINE_LIMIT = 256 * 1024
EDITABLE_KINDS = {
    Artifact.Kind.DIFF,
    Artifact.Kind.LOG,
    Artifact.Kind.FILE,
    Artifact.Kind.JSON,
    Artifact.Kind.MARKDOWN,
}
# Only raster images are shown inline: SVG can carry script.
INLINE_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
_CHUNK = 64 * 1024
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+$")


def is_valid_content_type(value: str) -> bool:
    """A bare `type/subtype` (no parameters, no control characters): safe in a header."""
    return bool(_CONTENT_TYPE.match(value or ""))


def safe_content_type(value: str) -> str:
    return value if is_valid_content_type(value) else "application/octet-stream"


def default_content_type(kind: str) -> str:
    return {
        Artifact.Kind.DIFF: "text/x-diff",
        Artifact.Kind.JSON: "application/json",
        Artifact.Kind.MARKDOWN: "text/markdown",
        Artifact.Kind.IMAGE: "application/octet-stream",
    }.get(kind, "text/plain")


@dataclass
class ArtifactInput:
    """An artifact that comes with a checkpoint request: content, or an uploaded one (`ref`)."""

    name: str
    kind: str = Artifact.Kind.FILE
    content: str | bytes | None = None
    ref: Artifact | None = None  # an uploaded artifact to attach
    content_type: str = ""


@dataclass
class ArtifactEdit:
    """The reviewer's new text for one of the checkpoint's artifacts."""

    original_id: Any
    content: str


def artifact_text(artifact: Artifact, limit: int | None = None) -> str:
    """The artifact's content as text (inline or from storage), optionally only a prefix."""
    if artifact.inline or not artifact.file:
        return artifact.inline if limit is None else artifact.inline[:limit]
    with artifact.file.open("rb") as fh:
        raw = fh.read() if limit is None else fh.read(limit)
    return raw.decode("utf-8", errors="replace")


def _sha256_of(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks(_CHUNK):
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def upload_fingerprint(upload: UploadedFile) -> list:
    """What identifies an uploaded file for idempotency: name, size and content digest."""
    return [upload.name, upload.size, _sha256_of(upload)]


def artifact_create(
    *,
    name: str,
    kind: str,
    content: str | bytes | UploadedFile,
    content_type: str = "",
    checkpoint: Checkpoint | None = None,
    agent_id: Any = None,
    edited_from: Artifact | None = None,
    id: uuid.UUID | None = None,
) -> Artifact:
    """Store one artifact: text up to INLINE_LIMIT inline, anything else (bytes, uploads, big
    text) in storage, streamed in chunks for uploads."""
    artifact = Artifact(
        id=id or uuid.uuid4(),
        checkpoint=checkpoint,
        agent_id=agent_id if agent_id is not None else getattr(checkpoint, "agent_id", None),
        name=name,
        kind=kind,
        content_type=content_type or default_content_type(kind),
        edited_from=edited_from,
    )
    if isinstance(content, UploadedFile):
        artifact.sha256, artifact.size = _sha256_of(content), content.size
        artifact.file.save(name or "artifact", content, save=False)  # chunked copy
    else:
        raw = content if isinstance(content, bytes) else content.encode()
        artifact.sha256, artifact.size = hashlib.sha256(raw).hexdigest(), len(raw)
        if isinstance(content, str) and len(raw) <= INLINE_LIMIT:
            artifact.inline = content
        else:
            artifact.file.save(name or "artifact", ContentFile(raw), save=False)
    artifact.save()
    return artifact


def artifact_upload(*, agent_id: Any, upload: UploadedFile, name: str, kind: str) -> Artifact:
    """An agent's upload, not yet attached to a checkpoint (referenced later by its ref). The
    content type is the upload's own, else guessed from the name."""
    content_type = (
        upload.content_type
        if upload.content_type and upload.content_type != "application/octet-stream"
        else mimetypes.guess_type(name)[0] or "application/octet-stream"
    )
    return artifact_create(
        agent_id=agent_id,
        name=name,
        kind=kind,
        content=upload,
        content_type=safe_content_type(content_type[:100]),
    )


def artifact_attach(cp: Checkpoint, item: ArtifactInput) -> Artifact:
    """A checkpoint request's artifact: stored now, or an earlier upload attached (once)."""
    if item.ref is None:
        return artifact_create(
            checkpoint=cp,
            name=item.name,
            kind=item.kind,
            content=item.content if item.content is not None else "",
            content_type=item.content_type,
        )
    Artifact.objects.filter(pk=item.ref.pk, checkpoint__isnull=True).update(checkpoint=cp)
    item.ref.refresh_from_db()
    if item.ref.checkpoint_id != cp.pk:
        raise InvalidInput(f"artifact {item.ref.ref} is attached elsewhere", "artifacts")
    return item.ref


# --- reviewers' edits of a review checkpoint's artifacts ------------------------------------------


@dataclass
class PreparedEdit:
    """A validated edit, not stored yet: the decision stores it only once its other checks
    passed (so a refused decision leaves no file behind)."""

    original: Artifact
    content: str
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def ref(self) -> str:
        return f"artifact://{self.id}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    def summary(self, old: str) -> dict:
        """For the edited action and the audit trail."""
        name = self.original.name
        return {
            "name": name,
            "original": self.original.ref,
            "original_sha256": self.original.sha256,
            "ref": self.ref,
            "sha256": self.sha256,
            "diff": unified(old, self.content, f"a/{name}", f"b/{name}"),
        }


def artifact_edits_prepare(
    cp: Checkpoint, edits: list[ArtifactEdit]
) -> tuple[list[PreparedEdit], list[dict]]:
    """Validate a reviewer's edits of `cp`'s artifacts; returns them with their summaries.
    Raises InvalidInput on bad input."""
    if cp.kind != Checkpoint.Kind.REVIEW:
        raise InvalidInput("Only review checkpoints take edited artifacts", "artifacts")
    originals = {str(a.pk): a for a in Artifact.objects.filter(checkpoint=cp)}
    prepared: list[PreparedEdit] = []
    summary: list[dict] = []
    for edit in edits:
        original = originals.get(str(edit.original_id))
        if original is None:
            raise InvalidInput("No such artifact on this checkpoint", "artifacts")
        if any(p.original.pk == original.pk for p in prepared):
            raise InvalidInput(f"{original.name} is edited twice", "artifacts")
        if original.kind not in EDITABLE_KINDS:
            raise InvalidInput(f"{original.name} ({original.kind}) cannot be edited", "artifacts")
        if not isinstance(edit.content, str):
            raise InvalidInput("Edited content must be text", "artifacts")
        try:
            check_storable_text(edit.content)
        except InvalidInput as exc:
            raise InvalidInput(f"{original.name}: {exc}", "artifacts") from None
        old = artifact_text(original)
        item = PreparedEdit(original, edit.content.replace("\r\n", "\n"))
        if item.content == old:
            raise InvalidInput(f"{original.name} is unchanged", "artifacts")
        prepared.append(item)
        summary.append(item.summary(old))
    if not summary:
        raise InvalidInput("No edited artifact given", "artifacts")
    return prepared, summary


def artifact_edits_save(cp: Checkpoint, prepared: list[PreparedEdit]) -> list[Artifact]:
    """Store prepared edits beside their originals (`edited_from`), in the caller's
    transaction."""
    return [
        artifact_create(
            id=item.id,
            checkpoint=cp,
            name=item.original.name,
            kind=item.original.kind,
            content=item.content,
            content_type=item.original.content_type,
            edited_from=item.original,
        )
        for item in prepared
    ]


# --- downloads ------------------------------------------------------------------------------------


def _text_type(artifact: Artifact) -> str:
    ctype = safe_content_type(
        artifact.content_type or mimetypes.guess_type(artifact.name)[0] or "text/plain"
    )
    if ctype.startswith("text/") or ctype == "application/json":
        return f"{ctype}; charset=utf-8"
    return ctype


def artifact_response(artifact: Artifact, *, inline: bool = False, typed: bool = True):
    """The artifact's bytes as an HTTP response: agent-supplied content, so never run by the
    browser as a page of ours.

    `inline`: shown in the page (raster images only; anything else is an attachment).
    `typed`: the artifact's own (sanitised) content type; otherwise application/octet-stream
    (the API, whose clients read the type from `X-HITL-Content-Type`)."""
    inline = inline and artifact.content_type in INLINE_IMAGE_TYPES
    if artifact.file:
        content_type = safe_content_type(artifact.content_type)
        response: HttpResponse = FileResponse(artifact.file.open("rb"))
    else:
        content_type = _text_type(artifact)
        response = HttpResponse(artifact.inline.encode())
    response["Content-Type"] = content_type if typed else "application/octet-stream"
    # Agent-supplied names: content_disposition_header quotes/encodes, so no header injection.
    response["Content-Disposition"] = content_disposition_header(
        not inline, artifact.name or "artifact"
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["X-HITL-Content-Type"] = safe_content_type(artifact.content_type)
    response["X-HITL-SHA256"] = artifact.sha256
    return response
