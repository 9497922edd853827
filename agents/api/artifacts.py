"""/artifacts/: uploads streamed to Django storage (referenced later as artifact://<uuid> in
a checkpoint's `artifacts`), and downloads for those allowed to see them."""

from __future__ import annotations

import hashlib
import mimetypes

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser
from rest_framework.response import Response

from agents.api.base import artifacts_visible_to
from agents.api.idempotency import IdempotentMixin
from agents.api.parsers import LimitedMultiPartParser
from agents.api.permissions import IsAgent, IsAgentOrHuman
from agents.api.serializers import ArtifactCreatedSerializer, ArtifactUploadSerializer
from approvals.api.serializers import ArtifactOutSerializer, artifact_data
from approvals.audit import canonical_json
from approvals.models import Artifact, safe_content_type

_CHUNK = 64 * 1024


def _sha256_of(uploaded) -> str:
    digest = hashlib.sha256()
    uploaded.seek(0)
    for chunk in uploaded.chunks(_CHUNK):
        digest.update(chunk)
    uploaded.seek(0)
    return digest.hexdigest()


def _created(artifact: Artifact) -> dict:
    return {
        "id": str(artifact.id),
        "ref": artifact.ref,
        "sha256": artifact.sha256,
        "size": artifact.size,
        "name": artifact.name,
        "kind": artifact.kind,
        "content_type": artifact.content_type,
    }


@extend_schema_view(
    post=extend_schema(
        operation_id="artifacts_upload",
        tags=["artifacts"],
        summary="Upload an artifact (multipart)",
        description="Streamed to storage. Reference it from a checkpoint as "
        '`{"name": ..., "kind": ..., "ref": "artifact://<id>"}`.',
        request={"multipart/form-data": ArtifactUploadSerializer},
        responses={201: ArtifactCreatedSerializer},
    )
)
class ArtifactUploadView(IdempotentMixin, generics.GenericAPIView):
    permission_classes = [IsAgent]
    parser_classes = [LimitedMultiPartParser, FormParser]
    serializer_class = ArtifactUploadSerializer

    def idempotency_body(self, request) -> str:
        # The body's identity is the form fields and the file's content, not the multipart
        # boundary that differs on every retry.
        fields = {k: v for k, v in request.data.items() if k != "file"}
        upload = request.FILES.get("file")
        files = {"file": [upload.name, upload.size, _sha256_of(upload)]} if upload else {}
        return canonical_json({"fields": fields, "files": files})

    def perform_post(self, request):
        data = ArtifactUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        name = data.validated_data.get("name") or upload.name or "artifact"
        content_type = (
            upload.content_type
            if upload.content_type and upload.content_type != "application/octet-stream"
            else mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        artifact = Artifact(
            agent=request.user.agent,
            name=name,
            kind=data.validated_data["kind"],
            content_type=safe_content_type(content_type[:100]),
            sha256=_sha256_of(upload),
            size=upload.size,
        )
        artifact.file.save(name, upload, save=False)  # chunked copy into storage
        artifact.save()
        return Response(
            _created(artifact),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/artifacts/{artifact.id}/"},
        )


def _load(request, pk) -> Artifact:
    artifact = artifacts_visible_to(request.user).filter(pk=pk).first()
    if artifact is None:
        raise NotFound("No such artifact.")
    return artifact


class ArtifactDetailView(generics.GenericAPIView):
    """Metadata (and inline content of small text artifacts)."""

    permission_classes = [IsAgentOrHuman]
    serializer_class = ArtifactOutSerializer

    @extend_schema(operation_id="artifacts_retrieve", tags=["artifacts"])
    def get(self, request, pk):
        return Response(artifact_data(_load(request, pk)))


class ArtifactContentView(generics.GenericAPIView):
    """The bytes, as a download (never rendered inline: the content is the agent's)."""

    permission_classes = [IsAgentOrHuman]

    @extend_schema(
        operation_id="artifacts_content",
        tags=["artifacts"],
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request, pk):
        artifact = _load(request, pk)
        if artifact.file:
            response = FileResponse(
                artifact.file.open("rb"), as_attachment=True, filename=artifact.name
            )
        else:
            response = HttpResponse(artifact.inline.encode())
            response["Content-Disposition"] = f'attachment; filename="{artifact.id}"'
        response["Content-Type"] = "application/octet-stream"
        response["X-Content-Type-Options"] = "nosniff"
        response["X-HITL-Content-Type"] = safe_content_type(artifact.content_type)
        response["X-HITL-SHA256"] = artifact.sha256
        return response
