"""/artifacts/: uploads streamed to Django storage (referenced later as artifact://<uuid> in
a checkpoint's `artifacts`), and downloads for those allowed to see them."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.parsers import FormParser
from rest_framework.response import Response

from api.access import visible_artifact
from api.idempotency import IdempotentMixin
from api.parsers import LimitedMultiPartParser
from api.permissions import IsAgent, IsAgentOrPerson
from api.serializers import (
    ArtifactCreatedSerializer,
    ArtifactOutSerializer,
    ArtifactUploadSerializer,
)
from approvals.artifacts import artifact_response, artifact_upload, upload_fingerprint
from approvals.models import Artifact
from approvals.representations import artifact_data
from core.canonical import canonical_json


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
        files = {"file": upload_fingerprint(upload)} if upload else {}
        return canonical_json({"fields": fields, "files": files})

    def perform_post(self, request):
        data = ArtifactUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        artifact = artifact_upload(
            agent_id=request.user.agent.pk,
            upload=upload,
            name=data.validated_data.get("name") or upload.name or "artifact",
            kind=data.validated_data["kind"],
        )
        return Response(
            _created(artifact),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/artifacts/{artifact.id}/"},
        )


class ArtifactDetailView(generics.GenericAPIView):
    """Metadata (and inline content of small text artifacts)."""

    permission_classes = [IsAgentOrPerson]
    serializer_class = ArtifactOutSerializer

    @extend_schema(operation_id="artifacts_retrieve", tags=["artifacts"])
    def get(self, request, pk):
        return Response(artifact_data(visible_artifact(request.user, pk)))


class ArtifactContentView(generics.GenericAPIView):
    """The bytes, as a download (never rendered inline: the content is the agent's)."""

    permission_classes = [IsAgentOrPerson]

    @extend_schema(
        operation_id="artifacts_content",
        tags=["artifacts"],
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request, pk):
        return artifact_response(visible_artifact(request.user, pk), typed=False)
