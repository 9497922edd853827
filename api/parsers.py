"""Strict request parsing: every malformed body is a 400 (or 413), never a 500 later in the
database. PostgreSQL's jsonb rejects NUL characters and lone surrogates and Python's json
accepts both, as well as NaN/Infinity and 1e999; all of them are refused here, at the edge."""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, MultiPartParser

from api.exceptions import PayloadTooLarge
from core.canonical import check_storable_json
from core.exceptions import InvalidInput


def _content_length(parser_context: dict | None) -> int | None:
    request = (parser_context or {}).get("request")
    if request is None:
        return None
    raw = request.META.get("CONTENT_LENGTH") or ""
    try:
        return int(raw)
    except ValueError:
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def loads_strict(raw: bytes, max_depth: int) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("Request body is not valid UTF-8.") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ParseError(f"JSON is nested deeper than {max_depth} levels.") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError; so are our own refusals
        raise ParseError(f"Malformed JSON: {exc}") from None
    try:
        check_storable_json(value, max_depth)
    except InvalidInput as exc:
        raise ParseError(str(exc)) from None
    return value


def check_body_size(size: int | None, *, declared: bool = True) -> None:
    """PayloadTooLarge (413) for a body over HITL_API_MAX_BODY_BYTES. Every edge that takes
    a body checks with it: the REST API's and HumanLayer's parser, Slack's endpoint and /mcp
    (`declared`: `size` is the Content-Length, else what was read, at most limit + 1)."""
    limit = settings.HITL_API_MAX_BODY_BYTES
    if size is not None and size > limit:
        if declared:
            raise PayloadTooLarge(f"Request body is {size} bytes; the limit is {limit}.")
        raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        check_body_size(_content_length(parser_context))
        raw = stream.read(settings.HITL_API_MAX_BODY_BYTES + 1) if stream is not None else b""
        check_body_size(len(raw), declared=False)
        if not raw.strip():
            return {}
        return loads_strict(raw, settings.HITL_API_MAX_JSON_DEPTH)


class LimitedMultiPartParser(MultiPartParser):
    """Multipart uploads (artifacts), streamed by Django's upload handlers; size-limited."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.HITL_API_MAX_UPLOAD_BYTES
        length = _content_length(parser_context)
        if length is not None and length > limit:
            raise PayloadTooLarge(f"Upload is {length} bytes; the limit is {limit}.")
        return super().parse(stream, media_type, parser_context)
