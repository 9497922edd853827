"""HumanLayer's JSON (the `humanlayer` 0.7.9 SDK's pydantic models) ↔ portal checkpoints.

A `FunctionCall` is an `approval` checkpoint that allows only approve and reject (the SDK runs
the original arguments on `approved: true`, so an edit must never be reported as approved); a
`HumanContact` is a `question` checkpoint. Both are named `humanlayer:<call_id>` (the
checkpoint's external_id) on the run named by HumanLayer's `run_id`. The request's `spec` is
kept in `context.humanlayer.spec` and echoed unchanged; every terminal state sets the status
field the SDK polls for (`approved` / `response`), because it polls until it does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rest_framework import serializers

from api.serializers import single_line
from approvals import rules
from approvals.models import Checkpoint
from approvals.representations import iso
from core.canonical import canonical_json
from core.text import one_line

SOURCE = "humanlayer"
Status = Checkpoint.Status


def external_id(call_id: str) -> str:
    return f"{SOURCE}:{call_id}"


def call_id(cp: Checkpoint) -> str:
    """The client's call id of a HumanLayer checkpoint."""
    return cp.external_id.removeprefix(f"{SOURCE}:")


def request_sha256(kind: str, body: dict) -> str:
    """Two creates are "the same request" when run, call and spec are."""
    same = {
        "kind": kind,
        "run_id": body["run_id"],
        "call_id": body["call_id"],
        "spec": body["spec"],
    }
    return hashlib.sha256(canonical_json(same).encode()).hexdigest()


# --- input -------------------------------------------------------------------------------------


class _OptionIn(serializers.Serializer):
    name = single_line(max_length=500)
    title = single_line(max_length=500, required=False, allow_null=True, allow_blank=True)
    description = serializers.CharField(
        max_length=5000, required=False, allow_null=True, allow_blank=True
    )
    prompt_fill = serializers.CharField(
        max_length=5000, required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )
    interactive = serializers.BooleanField(required=False, default=False)


def _options(**kwargs) -> _OptionIn:
    return _OptionIn(many=True, required=False, allow_null=True, max_length=50, **kwargs)


class _SpecIn(serializers.Serializer):
    """What both specs carry: a channel (kept, not used) and the client's state (echoed)."""

    channel = serializers.DictField(required=False, allow_null=True)
    state = serializers.DictField(required=False, allow_null=True)
    options_field = ""

    def validate(self, attrs):
        names = [o["name"] for o in attrs.get(self.options_field) or []]
        if len(set(names)) != len(names):
            raise serializers.ValidationError({self.options_field: ["Names must be unique."]})
        return attrs


class FunctionCallSpecIn(_SpecIn):
    fn = single_line(max_length=200)
    kwargs = serializers.DictField()
    reject_options = _options()
    options_field = "reject_options"


class HumanContactSpecIn(_SpecIn):
    msg = serializers.CharField(max_length=50_000)
    subject = single_line(max_length=300, required=False, allow_null=True)
    response_options = _options()
    options_field = "response_options"


class _CallIn(serializers.Serializer):
    run_id = single_line(max_length=200)
    call_id = single_line(max_length=200)
    status = serializers.DictField(required=False, allow_null=True)  # ignored: the portal's


class FunctionCallIn(_CallIn):
    spec = FunctionCallSpecIn()


class HumanContactIn(_CallIn):
    spec = HumanContactSpecIn()


class FunctionCallStatusIn(serializers.Serializer):
    """The body of `respond`: requested_at / responded_at / slack_message_ts are ignored (the
    server's clock and record win)."""

    approved = serializers.BooleanField()
    comment = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=10_000
    )
    reject_option_name = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=500
    )


class HumanContactStatusIn(serializers.Serializer):
    response = serializers.CharField(max_length=10_000)
    response_option_name = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=500
    )


def raw_spec(request_data: dict) -> dict:
    """The spec as the client sent it (every field, nulls included): echoed unchanged."""
    spec = request_data.get("spec")
    return spec if isinstance(spec, dict) else {}


# --- what the portal stores ----------------------------------------------------------------------


def _label(option: dict) -> str:
    return option.get("title") or option["name"]


def _call_title(fn: str, kwargs: dict) -> str:
    shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in kwargs.items())
    return one_line(f"{fn}({shown})", 300)  # a key may hold a line break


def function_call_ask(body: dict, spec: dict) -> dict:
    """`agents.services.Ask` fields for a FunctionCall. The spec is kept without its kwargs
    (they are the action's args, echoed from there): stored once, a call is bounded like any
    other request."""
    v = body["spec"]
    spec = {k: value for k, value in spec.items() if k != "kwargs"}
    return {
        "title": _call_title(v["fn"], v["kwargs"]),
        "kind": Checkpoint.Kind.APPROVAL,
        "action": {"tool": v["fn"], "args": v["kwargs"]},
        "context": {
            "source": SOURCE,
            SOURCE: {"run_id": body["run_id"], "call_id": body["call_id"], "spec": spec},
        },
        "allowed_outcomes": ["approve", "reject"],
        "reject_options": [
            {
                "value": o["name"],
                "label": _label(o),
                **({"description": o["description"]} if o.get("description") else {}),
                **({"prompt_fill": o["prompt_fill"]} if o.get("prompt_fill") else {}),
            }
            for o in v.get("reject_options") or []
        ],
        "external_id": external_id(body["call_id"]),
        "request_sha256": request_sha256("function_call", body),
    }


def contact_ask(body: dict, spec: dict) -> dict:
    """`agents.services.Ask` fields for a HumanContact (a question)."""
    v = body["spec"]
    msg = v["msg"]
    title = v.get("subject") or one_line(msg.strip().splitlines()[0], 300)
    return {
        "title": title,
        "kind": Checkpoint.Kind.QUESTION,
        "summary": msg,
        "options": [
            {"value": o["name"], "label": _label(o)} for o in v.get("response_options") or []
        ],
        "context": {
            "source": SOURCE,
            SOURCE: {"run_id": body["run_id"], "call_id": body["call_id"], "spec": spec},
        },
        "external_id": external_id(body["call_id"]),
        "request_sha256": request_sha256("human_contact", body),
    }


# --- what the SDK reads back ---------------------------------------------------------------------


def _stored(cp: Checkpoint) -> dict:
    return (cp.context or {}).get(SOURCE) or {}


def _spec_options(cp: Checkpoint, key: str) -> list[dict]:
    return [o for o in (_stored(cp).get("spec") or {}).get(key) or [] if isinstance(o, dict)]


def _option_text(option: dict) -> str:
    return option.get("prompt_fill") or option.get("title") or option.get("name") or ""


def _withdrawn(cp: Checkpoint) -> str:
    return f"withdrawn: {cp.resolution_reason or 'cancelled'}"


def function_call_data(cp: Checkpoint, last_comment: str = "") -> dict[str, Any]:
    stored = _stored(cp)
    status: dict[str, Any] = {
        "requested_at": iso(cp.created_at),
        "responded_at": iso(cp.resolved_at),
        "approved": None,
        "comment": None,
        "reject_option_name": None,
        "slack_message_ts": None,
    }
    fn = (cp.action or {}).get("tool", "")
    if cp.status == Status.APPROVED:
        final = cp.final_action or cp.action
        if final.get("args") != (cp.action or {}).get("args"):
            # The SDK would run the original arguments: an edit is never "approved: true".
            status["approved"] = False
            status["comment"] = (
                f"Approved only with these arguments: {json.dumps(final.get('args'))}. "
                f"Call {fn} again with exactly these arguments."
            )
        else:
            status["approved"] = True
            status["comment"] = last_comment or None
    elif cp.status == Status.REJECTED:
        status["approved"] = False
        status["comment"] = cp.resolution_reason or "rejected"
        status["reject_option_name"] = cp.answer or None
    elif cp.status == Status.ANSWERED:
        status["approved"] = False
        status["comment"] = f"Not approved; the reviewer answered instead: {cp.answer}"
    elif cp.status == Status.EXPIRED:
        status["approved"] = False
        status["comment"] = cp.resolution_reason or "expired"
    elif cp.status == Status.CANCELLED:
        status["approved"] = False
        status["comment"] = _withdrawn(cp)
    args = (cp.action or {}).get("args", {})
    return {
        "run_id": stored.get("run_id", ""),
        "call_id": stored.get("call_id", ""),
        "spec": {"fn": fn, "kwargs": args, **(stored.get("spec") or {})},
        "status": status,
    }


def contact_data(cp: Checkpoint, last_comment: str = "") -> dict[str, Any]:
    stored = _stored(cp)
    status: dict[str, Any] = {
        "requested_at": iso(cp.created_at),
        "responded_at": iso(cp.resolved_at),
        "response": None,
        "response_option_name": None,
    }
    if cp.status == Status.ANSWERED:
        option = next(
            (o for o in _spec_options(cp, "response_options") if o.get("name") == cp.answer), None
        )
        if option is not None:
            status["response"] = last_comment or _option_text(option)
            status["response_option_name"] = cp.answer
        else:
            status["response"] = cp.answer
    elif cp.status in (Status.REJECTED, Status.EXPIRED, Status.APPROVED):
        status["response"] = f"[{cp.status}] {cp.resolution_reason or cp.status}"
    elif cp.status == Status.CANCELLED:
        status["response"] = f"[cancelled] {_withdrawn(cp)}"
    return {
        "run_id": stored.get("run_id", ""),
        "call_id": stored.get("call_id", ""),
        "spec": stored.get("spec") or {"msg": cp.summary},
        "status": status,
    }


def respond_answer(cp: Checkpoint, response: str, option_name: str | None) -> tuple[str, str]:
    """A HumanContactStatus as the portal's (answer, comment): a named option with the text
    as its comment, or the text as the answer."""
    if option_name and option_name in rules.option_values(cp):
        return option_name, response
    return response, ""
