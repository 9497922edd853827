"""The API's request and response shapes: input serializers validate at the edge (400 with
field errors); output serializers describe for the OpenAPI schema exactly what the plain
functions of `approvals.representations` (and `api.runs`) build."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Run, RunEvent
from agents.services import ARTIFACT_REF
from approvals.artifacts import is_valid_content_type
from approvals.models import Artifact, Checkpoint, Decision, Risk
from approvals.representations import INLINE_IN_RESPONSE_LIMIT

# --- checkpoints, decisions, artifacts: output -----------------------------------------------


class ActionSerializer(serializers.Serializer):
    tool = serializers.CharField(max_length=200, help_text="The tool the agent wants to call.")
    args = serializers.DictField(
        required=False, default=dict, help_text="Its arguments, as JSON (types are kept)."
    )


class StageSerializer(serializers.Serializer):
    role = serializers.CharField()
    approvals = serializers.IntegerField()


class RoutedToSerializer(serializers.Serializer):
    roles = serializers.ListField(child=serializers.CharField())
    stages = StageSerializer(many=True)
    stage = serializers.IntegerField(help_text="Index of the current stage.")
    current_role = serializers.CharField()
    approvals_needed = serializers.IntegerField()
    escalated = serializers.BooleanField()
    policy = serializers.CharField(allow_null=True)


class ArtifactOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    ref = serializers.CharField(help_text="artifact://<uuid>")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Artifact.Kind.choices)
    content_type = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    content_url = serializers.URLField()
    created_at = serializers.DateTimeField()
    content = serializers.CharField(
        allow_null=True,
        required=False,
        help_text=f"Inline text for small text artifacts (≤ {INLINE_IN_RESPONSE_LIMIT} bytes).",
    )


class LedgerRefSerializer(serializers.Serializer):
    event = serializers.IntegerField(help_text="The audit event that resolved it.")
    seq = serializers.IntegerField(
        allow_null=True,
        help_text="Its place in the ledger; null for the moment until the sequencer logs it.",
    )
    proof_url = serializers.URLField(help_text="Its inclusion proof.")


DECISION_OUTCOMES = ["approve", "modify", "reject", "answer", "expired", "cancelled"]


class DecisionOutSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=DECISION_OUTCOMES)
    action = serializers.JSONField(
        allow_null=True, help_text="The action as approved (edited if outcome is modify)."
    )
    action_sha256 = serializers.CharField(allow_null=True)
    answer = serializers.CharField(allow_null=True)
    comment = serializers.CharField(allow_blank=True, help_text="The reviewer's reason.")
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    ledger = LedgerRefSerializer(allow_null=True)
    receipt = serializers.CharField(
        allow_null=True,
        help_text="Approvals: the signed single-use receipt (a JWS) to redeem right before "
        "acting (POST /receipts/redeem/).",
    )


class CheckpointOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    run = serializers.UUIDField()
    agent = serializers.CharField()
    kind = serializers.ChoiceField(choices=Checkpoint.Kind.choices)
    status = serializers.ChoiceField(choices=Checkpoint.Status.choices)
    title = serializers.CharField()
    summary = serializers.CharField(allow_blank=True)
    action = serializers.JSONField(help_text="The action as the agent proposed it.")
    current_action = serializers.JSONField(
        help_text="The version under review now (after edits in a quorum); once approved, "
        "what runs."
    )
    current_action_sha256 = serializers.CharField()
    context = serializers.JSONField()
    risk = serializers.ChoiceField(choices=Risk.choices)
    options = serializers.JSONField()
    role_hint = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()
    routed_to = RoutedToSerializer()
    review_url = serializers.URLField()
    artifacts = ArtifactOutSerializer(many=True)
    decision = DecisionOutSerializer(allow_null=True)


class QueueItemSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    run = serializers.UUIDField()
    agent = serializers.CharField()
    kind = serializers.ChoiceField(choices=Checkpoint.Kind.choices)
    title = serializers.CharField()
    summary = serializers.CharField(allow_blank=True)
    action = serializers.JSONField()
    current_action = serializers.JSONField()
    current_action_sha256 = serializers.CharField()
    risk = serializers.ChoiceField(choices=Risk.choices)
    status = serializers.ChoiceField(choices=Checkpoint.Status.choices)
    current_role = serializers.CharField()
    stage = serializers.IntegerField()
    approvals_needed = serializers.IntegerField()
    deadline = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    claimed_by = serializers.CharField(allow_null=True)
    review_url = serializers.URLField()


class DecisionInSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=Decision.Outcome.choices)
    comment = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=10_000,
        help_text="Required for reject: the agent reads it to decide what to do instead.",
    )
    action = serializers.JSONField(
        required=False,
        default=None,
        help_text='For modify: the edited action, {"args": {...}} (the tool cannot change).',
    )
    answer = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=10_000,
        help_text="For answer (question checkpoints).",
    )
    action_sha256 = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        default="",
        help_text="current_action_sha256 of the version you reviewed: if another reviewer "
        "edited the action since, the decision is refused with 409 instead of approving a "
        "version you did not see.",
    )


class DecisionResultSerializer(serializers.Serializer):
    resolved = serializers.BooleanField(help_text="False while more approvals are needed.")
    stage_advanced = serializers.BooleanField()
    checkpoint = CheckpointOutSerializer()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, the body of every error response."""

    type = serializers.CharField(default="about:blank")
    title = serializers.CharField()
    status = serializers.IntegerField()
    code = serializers.CharField(help_text="Machine-readable: invalid, not_found, conflict, ...")
    detail = serializers.JSONField(help_text="Human-readable explanation.")
    errors = serializers.JSONField(
        required=False, help_text="Validation errors: field → messages (nested for objects)."
    )
    current_status = serializers.CharField(
        required=False, allow_null=True, help_text="409: the state the object is in."
    )
    winner = serializers.CharField(
        required=False, allow_null=True, help_text="409: who or what got there first."
    )
    at = serializers.DateTimeField(required=False, allow_null=True, help_text="409: when.")
    retry_after = serializers.IntegerField(required=False, help_text="429: seconds to wait.")


# --- runs; checkpoint and artifact input ----------------------------------------------------

MAX_EXPIRES_IN = 7 * 24 * 3600


class RunCreateSerializer(serializers.Serializer):
    task = serializers.CharField(max_length=20_000, help_text="What the run is about.")
    external_id = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        help_text="Your own id for this run (a ticket, a conversation).",
    )
    metadata = serializers.DictField(required=False, default=dict)
    agent = serializers.SlugField(
        max_length=100,
        required=False,
        help_text="With a personal user token only: the slug of a hosted agent to run.",
    )
    input = serializers.DictField(
        required=False, default=dict, help_text="With a user token: the hosted run's input."
    )


class RunCompleteSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[Run.Status.COMPLETED, Run.Status.FAILED])
    result = serializers.JSONField(required=False, default=None, allow_null=True)
    error = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=20_000,
        help_text="Why it failed (status=failed).",
    )


class RunEventInSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RunEvent.Kind.choices, default=RunEvent.Kind.LOG)
    message = serializers.CharField(max_length=20_000)
    data = serializers.DictField(required=False, default=dict)


class RunEventOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=RunEvent.Kind.choices)
    message = serializers.CharField()
    data = serializers.DictField()
    at = serializers.DateTimeField()


class RunCheckpointSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Checkpoint.Status.choices)
    title = serializers.CharField()
    kind = serializers.ChoiceField(choices=Checkpoint.Kind.choices)
    created_at = serializers.DateTimeField()


class RunOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    agent = serializers.CharField()
    status = serializers.ChoiceField(choices=Run.Status.choices)
    task = serializers.CharField()
    input = serializers.DictField()
    external_id = serializers.CharField(allow_blank=True)
    metadata = serializers.DictField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    checkpoints = RunCheckpointSerializer(many=True)


class ContextSerializer(serializers.Serializer):
    request = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=50_000,
        help_text="The original request the agent is working on.",
    )
    reasoning = serializers.ListField(
        child=serializers.CharField(allow_blank=True, max_length=20_000),
        required=False,
        max_length=200,
        help_text="The agent's reasoning steps.",
    )

    def to_internal_value(self, data):
        # Known keys are validated; any other keys are kept as the agent sent them.
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object.")
        validated = super().to_internal_value(data)
        extra = {k: v for k, v in data.items() if k not in self.fields}
        return {**extra, **validated}


def _no_control_characters(value: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise serializers.ValidationError("Control characters are not allowed.")


def _content_type(value: str) -> None:
    if value and not is_valid_content_type(value):
        raise serializers.ValidationError("Expected a media type like text/plain.")


class ArtifactInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, validators=[_no_control_characters])
    kind = serializers.ChoiceField(choices=Artifact.Kind.choices, default=Artifact.Kind.FILE)
    content = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Inline text content (a diff, a log, JSON, markdown).",
    )
    ref = serializers.RegexField(
        ARTIFACT_REF, required=False, help_text="artifact://<uuid> of an uploaded artifact."
    )
    content_type = serializers.CharField(
        max_length=100, required=False, default="", validators=[_content_type]
    )

    def validate(self, attrs):
        if ("content" in attrs) == ("ref" in attrs):
            raise serializers.ValidationError("Give exactly one of content or ref.")
        return attrs


class OptionSerializer(serializers.Serializer):
    value = serializers.CharField(max_length=500)
    label = serializers.CharField(max_length=500, required=False)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "maxLength": 500},
            {
                "type": "object",
                "properties": {
                    "value": {"type": "string", "maxLength": 500},
                    "label": {"type": "string", "maxLength": 500},
                },
                "required": ["value"],
            },
        ]
    }
)
class OptionField(serializers.Field):
    """A choice for a question: "yes" or {"value": "yes", "label": "Yes, go ahead"}."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            if not data or len(data) > 500:
                raise serializers.ValidationError("Options are 1-500 characters.")
            return data
        option = OptionSerializer(data=data)
        option.is_valid(raise_exception=True)
        return dict(option.validated_data)

    def to_representation(self, value):
        return value


class CheckpointCreateSerializer(serializers.Serializer):
    run = serializers.UUIDField(help_text="One of your runs (running or waiting).")
    kind = serializers.ChoiceField(
        choices=Checkpoint.Kind.choices, default=Checkpoint.Kind.APPROVAL
    )
    title = serializers.CharField(max_length=300)
    summary = serializers.CharField(required=False, allow_blank=True, default="", max_length=50_000)
    action = ActionSerializer(required=False, help_text="The proposed tool call.")
    context = ContextSerializer(required=False)
    risk = serializers.ChoiceField(choices=Risk.choices, default=Risk.MEDIUM)
    artifacts = ArtifactInSerializer(many=True, required=False, max_length=50)
    expires_in = serializers.IntegerField(
        required=False,
        min_value=10,
        max_value=MAX_EXPIRES_IN,
        help_text="Seconds until it expires (auto-reject or escalation). Default: by policy.",
    )
    role_hint = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=150,
        help_text="A role to add as an extra review stage; never replaces what policy requires.",
    )
    options = serializers.ListField(
        child=OptionField(),
        required=False,
        default=list,
        max_length=50,
        help_text="Choices for a question's answer.",
    )

    def validate(self, attrs):
        if attrs["kind"] in (Checkpoint.Kind.APPROVAL,) and not attrs.get("action"):
            raise serializers.ValidationError(
                {"action": ["An approval needs the proposed action: {tool, args}."]}
            )
        return attrs


class CheckpointCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ArtifactUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    name = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        validators=[_no_control_characters],
        help_text="Default: the file's name.",
    )
    kind = serializers.ChoiceField(choices=Artifact.Kind.choices, default=Artifact.Kind.FILE)


class ArtifactCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    ref = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Artifact.Kind.choices)
    content_type = serializers.CharField()


def status_filter(params, choices) -> str | None:
    """A `?status=` list filter: None when absent, 400 for a value that is no status."""
    value = params.get("status")
    if value is None:
        return None
    if value not in choices:
        raise serializers.ValidationError({"status": [f"One of: {', '.join(choices)}."]})
    return value


# --- the ledger and receipts ---------------------------------------------------------------


class TreeHeadSerializer(serializers.Serializer):
    origin = serializers.CharField()
    tree_size = serializers.IntegerField()
    root_hash = serializers.CharField(help_text="hex")
    timestamp = serializers.IntegerField(help_text="milliseconds since the Unix epoch")
    key_id = serializers.CharField()
    signature = serializers.CharField(
        help_text="base64 Ed25519 signature of 'hitl-tree-head/v1\\n<origin>\\n<tree_size>"
        "\\n<root_hash>\\n<timestamp>\\n'"
    )


class LedgerKeySerializer(serializers.Serializer):
    key_id = serializers.CharField()
    algorithm = serializers.CharField()
    public_key = serializers.CharField(help_text="base64, raw 32 bytes")
    current = serializers.BooleanField()


class LedgerKeysSerializer(serializers.Serializer):
    origin = serializers.CharField()
    keys = LedgerKeySerializer(many=True)


class InclusionProofSerializer(serializers.Serializer):
    event = serializers.IntegerField()
    seq = serializers.IntegerField()
    leaf_index = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    leaf_hash = serializers.CharField()
    audit_path = serializers.ListField(child=serializers.CharField())
    entry = serializers.CharField()
    head = TreeHeadSerializer()


class ConsistencyProofSerializer(serializers.Serializer):
    # "from" is a Python keyword: declared through the fields mapping below.
    to = serializers.IntegerField()
    proof = serializers.ListField(child=serializers.CharField())
    head = TreeHeadSerializer()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField()
        return fields


class LedgerEntrySerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    event = serializers.IntegerField()
    hash = serializers.CharField(allow_null=True)
    entry = serializers.CharField()


class LedgerEntriesSerializer(serializers.Serializer):
    entries = LedgerEntrySerializer(many=True)
    last_seq = serializers.IntegerField()
    next_start = serializers.IntegerField(allow_null=True)


class ReceiptInSerializer(serializers.Serializer):
    receipt = serializers.CharField(max_length=20_000)
    action = ActionSerializer(required=False, help_text="The action you are about to run.")


class ReceiptRedeemInSerializer(ReceiptInSerializer):
    action = ActionSerializer(help_text="The exact action you are about to run.")


class ReceiptCheckSerializer(serializers.Serializer):
    valid = serializers.BooleanField(help_text="It could be redeemed now (for `action`).")
    problem = serializers.ChoiceField(
        choices=["redeemed", "expired", "action_mismatch"], allow_null=True
    )
    claims = serializers.JSONField()
    redeemed_at = serializers.DateTimeField(allow_null=True)
    redeemed_by = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField()


class RedemptionSerializer(serializers.Serializer):
    receipt = serializers.UUIDField()
    checkpoint = serializers.UUIDField()
    action_sha256 = serializers.CharField()
    approval_seq = serializers.IntegerField()
    redeemed_at = serializers.DateTimeField()
    redeemed_by = serializers.CharField()
