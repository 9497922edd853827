"""The API's request and response shapes: input serializers validate at the edge (400 with
field errors); output serializers describe for the OpenAPI schema exactly what the plain
functions of `approvals.representations` (and `api.runs`) build."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Run, RunEvent
from agents.services import ARTIFACT_REF, Ask
from approvals import rules, schemas
from approvals.artifacts import is_valid_content_type
from approvals.models import Artifact, Checkpoint, Decision, Risk
from approvals.representations import INLINE_IN_RESPONSE_LIMIT
from approvals.sources import SOURCES
from core.exceptions import InvalidInput
from core.text import SINGLE_LINE_PATTERN, check_single_line


class SingleLine(RegexValidator):
    """`core.text.check_single_line` as a field validator (its pattern goes into the schema):
    every edge's labels are checked by the one rule."""

    regex = SINGLE_LINE_PATTERN

    def __call__(self, value) -> None:
        try:
            check_single_line(str(value))
        except InvalidInput as exc:
            raise serializers.ValidationError(str(exc)) from None


def single_line(**kwargs) -> serializers.CharField:
    """A label (a title, a tool, a name): text on one line, else 400 naming the field."""
    return serializers.CharField(validators=[SingleLine()], **kwargs)


def name_field(**kwargs) -> serializers.CharField:
    return single_line(max_length=255, **kwargs)


# --- checkpoints, decisions, artifacts: output -----------------------------------------------


class ActionSerializer(serializers.Serializer):
    tool = single_line(max_length=200, help_text="The tool the agent wants to call.")
    args = serializers.DictField(
        required=False, default=dict, help_text="Its arguments, as JSON (types are kept)."
    )
    args_schema = serializers.DictField(
        required=False,
        help_text="JSON Schema of the arguments (draft 2020-12 unless it names its own "
        "`$schema`): a reviewer's edit must fit it (400 with field errors otherwise). "
        "Self-contained: every `$ref` points inside it (`#...`); nothing is fetched. Its "
        "regexes run on RE2 (no backreferences or lookaround); at most "
        "HITL_ARGS_SCHEMA_MAX_BYTES (64 KiB), _MAX_DEPTH (20) and _MAX_PATTERNS (100).",
    )

    def validate_args_schema(self, value):
        try:
            return schemas.check_args_schema(value)
        except InvalidInput as exc:
            raise serializers.ValidationError(str(exc)) from None


class StageSerializer(serializers.Serializer):
    role = serializers.CharField()
    approvals = serializers.IntegerField()


class PolicyVersionRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()


class RoutedToSerializer(serializers.Serializer):
    roles = serializers.ListField(child=serializers.CharField())
    stages = StageSerializer(many=True)
    stage = serializers.IntegerField(help_text="Index of the current stage.")
    current_role = serializers.CharField()
    approvals_needed = serializers.IntegerField()
    escalated = serializers.BooleanField()
    policy = serializers.CharField(allow_null=True)
    policy_version = PolicyVersionRefSerializer(
        allow_null=True, help_text="The published policy version that routed (or decided) it."
    )


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
    decided_by = serializers.CharField(allow_null=True, help_text="The person who decided.")
    decided_by_policy = PolicyVersionRefSerializer(
        allow_null=True, help_text="An automatic decision: the policy version that made it."
    )
    automatic = serializers.BooleanField(help_text="Decided by a policy, not a person.")
    decided_at = serializers.DateTimeField(allow_null=True)
    ledger = LedgerRefSerializer(allow_null=True)
    receipt = serializers.CharField(
        allow_null=True,
        help_text="Approvals: the signed single-use receipt (a JWS) to redeem right before "
        "acting (POST /receipts/redeem/).",
    )


class RejectOptionSerializer(serializers.Serializer):
    value = single_line(max_length=500, help_text="What `decision.answer` carries.")
    label = single_line(max_length=500, required=False)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    prompt_fill = serializers.CharField(
        max_length=5000,
        required=False,
        allow_blank=True,
        trim_whitespace=False,  # a pre-filled prompt ("too risky because ") keeps its space
        help_text="The reason's text when the reviewer writes none.",
    )


OUTCOME_CHOICES = list(Decision.Outcome.values)


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
    confidence = serializers.FloatField(allow_null=True)
    options = serializers.JSONField()
    role_hint = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()
    routed_to = RoutedToSerializer()
    review_url = serializers.URLField()
    artifacts = ArtifactOutSerializer(many=True)
    decision = DecisionOutSerializer(allow_null=True)
    external_id = serializers.CharField(allow_blank=True)
    allowed_outcomes = serializers.ListField(
        child=serializers.ChoiceField(choices=OUTCOME_CHOICES),
        help_text="The outcomes reviewers may choose.",
    )
    reject_options = RejectOptionSerializer(many=True)


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
    allowed_outcomes = serializers.ListField(child=serializers.ChoiceField(choices=OUTCOME_CHOICES))
    reject_options = RejectOptionSerializer(many=True)


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
        allow_null=True,
        help_text='For modify: the edited action, {"args": {...}} (the tool cannot change); '
        "null or absent otherwise.",
    )
    answer = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=10_000,
        help_text="For answer: the answer (one of the options, if any; `comment` may add "
        "free text). For reject: the value of one of the checkpoint's reject_options.",
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
    external_id = name_field(
        required=False,
        allow_blank=True,
        default="",
        help_text="Your own id for this run (a ticket, a conversation).",
    )
    metadata = serializers.DictField(required=False, default=dict)
    complete_when_resolved = serializers.BooleanField(
        required=False,
        default=False,
        help_text="A one-question run: it completes by itself once its checkpoints are "
        "resolved (what `hitl request` without --run asks for).",
    )
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
    source = serializers.ChoiceField(
        choices=sorted(SOURCES),
        required=False,
        help_text="The client that asked (integrations set it): the review page says what "
        "that client can do with the decision.",
    )

    def to_internal_value(self, data):
        # Known keys are validated; any other keys are kept as the agent sent them.
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object.")
        validated = super().to_internal_value(data)
        extra = {k: v for k, v in data.items() if k not in self.fields}
        return {**extra, **validated}


def _content_type(value: str) -> None:
    if value and not is_valid_content_type(value):
        raise serializers.ValidationError("Expected a media type like text/plain.")


class ArtifactInSerializer(serializers.Serializer):
    name = name_field()
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
    value = single_line(max_length=500)
    label = single_line(max_length=500, required=False)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "maxLength": 500, "pattern": SINGLE_LINE_PATTERN},
            {
                "type": "object",
                "properties": {
                    "value": {"type": "string", "maxLength": 500, "pattern": SINGLE_LINE_PATTERN},
                    "label": {"type": "string", "maxLength": 500, "pattern": SINGLE_LINE_PATTERN},
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
            SingleLine()(data)
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
    title = single_line(max_length=300, help_text="One line: the subject of every notification.")
    summary = serializers.CharField(required=False, allow_blank=True, default="", max_length=50_000)
    action = ActionSerializer(required=False, help_text="The proposed tool call.")
    context = ContextSerializer(required=False)
    risk = serializers.ChoiceField(choices=Risk.choices, default=Risk.MEDIUM)
    confidence = serializers.FloatField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0.0,
        max_value=1.0,
        help_text="Your own confidence in the action, 0 to 1. Policies may approve confident "
        'requests automatically (e.g. `confidence >= 0.95 && risk == "low"`).',
    )
    artifacts = ArtifactInSerializer(many=True, required=False, max_length=50)
    expires_in = serializers.IntegerField(
        required=False,
        min_value=10,
        max_value=MAX_EXPIRES_IN,
        help_text="Seconds until it expires (auto-reject or escalation). Default: by policy.",
    )
    role_hint = single_line(
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
    external_id = name_field(
        required=False,
        allow_blank=True,
        default="",
        help_text="Your own id for this request, unique per agent: the same request again "
        "returns the same checkpoint (200); another request under the same id is a 409. Look "
        "it up with GET /checkpoints/?external_id=.",
    )
    allowed_outcomes = serializers.ListField(
        child=serializers.ChoiceField(choices=OUTCOME_CHOICES),
        required=False,
        default=list,
        max_length=4,
        help_text="The outcomes reviewers may choose (default: all the kind takes); others "
        "are refused with 400 `outcome_not_allowed`. An approval may list `answer` (answer in "
        "place of running the tool).",
    )
    reject_options = RejectOptionSerializer(
        many=True,
        required=False,
        max_length=50,
        help_text="Named reasons to reject; a rejection may pick one as `answer`.",
    )

    def validate(self, attrs):
        if attrs["kind"] in (Checkpoint.Kind.APPROVAL,) and not attrs.get("action"):
            raise serializers.ValidationError(
                {"action": ["An approval needs the proposed action: {tool, args}."]}
            )
        try:
            attrs["allowed_outcomes"] = rules.check_allowed_outcomes(
                attrs["kind"], attrs["allowed_outcomes"]
            )
        except InvalidInput as exc:
            raise serializers.ValidationError(exc.errors()) from None
        values = [o["value"] for o in attrs.get("reject_options", [])]
        if len(set(values)) != len(values):
            raise serializers.ValidationError(
                {"reject_options": ["Each reject option needs its own value."]}
            )
        return attrs

    def to_ask(self, **extra) -> Ask:
        """The validated request as `agents.services.Ask` (`extra`: what is not in the body:
        the Idempotency-Key, resolved artifacts, the request's digest)."""
        v = self.validated_data
        return Ask(
            title=v["title"],
            kind=v["kind"],
            summary=v["summary"],
            action=dict(v["action"]) if v.get("action") else {},
            context=v.get("context") or {},
            risk=v["risk"],
            options=v["options"],
            role_hint=v["role_hint"],
            expires_in=v.get("expires_in"),
            external_id=v["external_id"],
            allowed_outcomes=v["allowed_outcomes"],
            reject_options=[dict(o) for o in v.get("reject_options", [])],
            confidence=v.get("confidence"),
            **extra,
        )


class CheckpointCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ArtifactUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    name = name_field(required=False, allow_blank=True, help_text="Default: the file's name.")
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
