"""The review page's forms. Validation at the edge: the decision rules (`approvals.rules`,
the same functions the transition and the API use) are checked here first, so the reviewer
gets a field error instead of a 409/500."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django import forms

from approvals import rules
from approvals.artifacts import EDITABLE_KINDS, ArtifactEdit, artifact_text
from approvals.edits import action_diff
from approvals.models import Artifact, Checkpoint, Decision
from approvals.transitions import checkpoint_edit_check
from core.canonical import action_sha256, canonical_json
from core.exceptions import InvalidInput

Outcome = Decision.Outcome
MAX_ARGS_CHARS = 1_000_000
MAX_ARTIFACT_CHARS = 2_000_000


class DecisionForm(forms.Form):
    outcome = forms.ChoiceField(choices=Outcome.choices)
    comment = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "Reason (required to reject; optional otherwise)"}
        ),
    )
    answer = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )
    action_args = forms.CharField(
        required=False,
        max_length=MAX_ARGS_CHARS,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code-input"}),
    )
    # Rejections: one of the checkpoint's named reasons (sent as the decision's `answer`).
    reject_option = forms.CharField(required=False, max_length=500)
    confirm = forms.CharField(required=False, widget=forms.HiddenInput)
    # The version of the action this page showed: a vote never approves a version the
    # reviewer did not see (another reviewer's edit in between is a 409).
    seen_action = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(
        self,
        checkpoint: Checkpoint,
        artifacts: list[Artifact] | None = None,
        *args: Any,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.checkpoint = checkpoint
        # Every outcome parses; `rules.validate_decision` says which this checkpoint allows.
        self.allowed = rules.allowed_outcomes(checkpoint)
        self.options = rules.option_choices(checkpoint)
        self.reject_options = [
            (str(o.get("value", "")), str(o.get("label") or o.get("value", "")), o)
            for o in checkpoint.reject_options or []
        ]
        self.current_action = checkpoint.final_action or checkpoint.action or {}
        if not self.is_bound:
            self.initial["seen_action"] = action_sha256(
                checkpoint.final_action or checkpoint.action
            )
            self.initial["action_args"] = json.dumps(
                self.current_action.get("args", {}), indent=2, ensure_ascii=False
            )
        # Review checkpoints: one editor per editable artifact (latest version of each).
        self.editable: list[Artifact] = []
        if checkpoint.kind == Checkpoint.Kind.REVIEW:
            for a in artifacts or []:
                if a.kind in EDITABLE_KINDS and a.size <= MAX_ARTIFACT_CHARS:
                    self.editable.append(a)
                    self.fields[f"artifact_{a.pk}"] = forms.CharField(
                        required=False,
                        max_length=MAX_ARTIFACT_CHARS,
                        strip=False,
                        widget=forms.Textarea(
                            attrs={"rows": 16, "spellcheck": "false", "class": "code-input"}
                        ),
                    )
                    if not self.is_bound:
                        self.initial[f"artifact_{a.pk}"] = artifact_text(a)

    def artifact_fields(self):
        return [(a, self[f"artifact_{a.pk}"]) for a in self.editable]

    def field_for(self, name: str) -> str | None:
        """The form field an InvalidInput names, or None (a non-field error)."""
        # The outcome is a button, not a field: its errors show above the form.
        name = {"action": "action_args", "outcome": ""}.get(name, name)
        if name == "answer" and self.data.get("outcome") == Outcome.REJECT:
            return "reject_option"
        return name if name in self.fields else None

    def add_invalid(self, exc: InvalidInput) -> None:
        """An InvalidInput from the rules as field errors: an edit that breaks the tool's
        argument schema gets one line per offending argument."""
        field = self.field_for(exc.field)
        args_errors = (exc.detail or {}).get("args") if isinstance(exc.detail, dict) else None
        if field == "action_args" and args_errors:
            for path, messages in args_errors.items():
                where = "" if path == "non_field_errors" else f"{path}: "
                for message in messages:
                    self.add_error(field, f"{where}{message}")
            return
        self.add_error(field, str(exc))

    def clean(self) -> dict:
        data = super().clean()
        outcome = data.get("outcome")
        data["edited_action"] = None
        data["artifact_edits"] = []
        if not outcome:
            return data
        if outcome == Outcome.MODIFY:
            self._clean_edits(data)
            if self.errors:
                return data
        if outcome == Outcome.REJECT:
            data["answer"] = (data.get("reject_option") or "").strip()
        # The schema check of an edit, once: the transition takes this verdict.
        check = data["edit_check"] = checkpoint_edit_check(
            self.checkpoint.pk, outcome, data["edited_action"]
        )
        try:
            if check is not None and check.problem is not None:
                raise check.problem
            rules.validate_decision(
                self.checkpoint,
                outcome,
                comment=(data.get("comment") or "").strip(),
                action=data["edited_action"],
                answer=(data.get("answer") or "").strip(),
                check_args=check is None,
            )
        except InvalidInput as exc:
            self.add_invalid(exc)
        return data

    def _clean_edits(self, data: dict) -> None:
        raw = data.get("action_args") or ""
        args: Any = self.current_action.get("args", {})
        if raw.strip():
            try:
                args = json.loads(raw)
            except ValueError as exc:
                self.add_error("action_args", f"Not valid JSON: {exc}")
                return
            if not isinstance(args, dict):
                self.add_error("action_args", "The arguments must be a JSON object ({...}).")
                return
            try:
                rules.check_edited_args(args)
            except InvalidInput as exc:
                self.add_error("action_args", str(exc))
                return
        edits = []
        for artifact in self.editable:
            content = data.get(f"artifact_{artifact.pk}")
            if content is None or content == "":
                continue
            content = content.replace("\r\n", "\n")
            if content != artifact_text(artifact):
                edits.append(ArtifactEdit(artifact.pk, content))
        args_changed = args != self.current_action.get("args", {})
        if not args_changed and not edits:
            self.add_error(
                "action_args" if not self.editable else None,
                "Nothing was edited. Change the arguments (or the draft), or use Approve.",
            )
            return
        data["edited_action"] = {**self.current_action, "args": args}
        data["artifact_edits"] = edits
        data["args_changed"] = args_changed
        data["action_diff"] = (
            action_diff(
                {k: v for k, v in self.current_action.items() if k != "edited_artifacts"},
                {k: v for k, v in data["edited_action"].items() if k != "edited_artifacts"},
            )
            if args_changed
            else ""
        )
        data["edit_fingerprint"] = hashlib.sha256(
            canonical_json(
                {"args": args, "artifacts": {str(e.original_id): e.content for e in edits}}
            ).encode()
        ).hexdigest()

    @property
    def needs_confirmation(self) -> bool:
        """Approve-with-edits is two steps: the reviewer sees the original → edited diff, then
        confirms that exact edit (the page's script shows the diff live and confirms)."""
        data = getattr(self, "cleaned_data", {})
        return (
            data.get("outcome") == Outcome.MODIFY
            and bool(data.get("edit_fingerprint"))
            and data.get("confirm") != data.get("edit_fingerprint")
        )


class ReassignForm(forms.Form):
    reviewer = forms.ModelChoiceField(
        queryset=None, empty_label="— release (nobody) —", required=False
    )

    def __init__(self, queryset, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["reviewer"].queryset = queryset
