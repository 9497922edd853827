"""OpenAPI generation shared by every API view (drf-spectacular's AutoSchema)."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema

from api.idempotency import IDEMPOTENCY_PARAMETER
from api.serializers import ProblemSerializer

PROBLEM_MEDIA = "application/problem+json"
# Every error an authenticated operation can answer, all as problem details.
_ERROR_CODES = ("400", "401", "403", "404", "409", "413", "415", "422", "429")


class HitlAutoSchema(AutoSchema):
    """Every POST takes an Idempotency-Key; every error is documented as a problem."""

    def get_override_parameters(self):
        params = list(super().get_override_parameters())
        if self.method == "POST" and all(
            getattr(p, "name", None) != IDEMPOTENCY_PARAMETER.name for p in params
        ):
            params.append(IDEMPOTENCY_PARAMETER)
        return params

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if not self.get_auth():
            return responses
        codes = [c for c in _ERROR_CODES if self.method == "POST" or c not in ("413", "415")]
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    ProblemSerializer, code, [PROBLEM_MEDIA], direction
                )
        return responses


def document_view(view, schema_view) -> None:
    """Let drf-spectacular document a plain (non-DRF) view: it reads an endpoint's operations
    from `callback.cls` and `callback.initkwargs`, which DRF's `as_view()` sets. `schema_view`
    is an APIView whose methods carry the `extend_schema` descriptions and are never routed.
    (`csrf_exempt` and other `functools.wraps` decorators copy these attributes along.)"""
    view.cls = schema_view
    view.initkwargs = {}


def require_action_for_approvals(result, generator, request, public):
    """A drf-spectacular postprocessing hook: the create-checkpoint body needs `action` unless
    its kind is question or review (the serializer's rule, which JSON Schema can only state
    as an anyOf)."""
    schema = result.get("components", {}).get("schemas", {}).get("CheckpointCreateRequest")
    if schema is not None:
        schema["anyOf"] = [
            {"required": ["action"]},
            {"required": ["kind"], "properties": {"kind": {"enum": ["question", "review"]}}},
        ]
    return result
