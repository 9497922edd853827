"""Reviewers' edits as text: the original → edited diffs that reviewers see and the audit
trail keeps, and the substitution of edited artifacts' refs in an action. Pure functions
(the edited artifacts themselves are stored by `approvals.artifacts`)."""

from __future__ import annotations

import difflib
import json
from typing import Any

# Diffs kept in the audit trail are capped; the full versions are stored as artifacts.
AUDIT_DIFF_LIMIT = 64 * 1024


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def unified(old: str, new: str, old_name: str, new_name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    # Lines without a trailing newline would glue onto the next one.
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def action_diff(original: dict | None, edited: dict | None) -> str:
    """The original → edited action as a unified diff of pretty JSON (what reviewers saw)."""
    return unified(pretty_json(original or {}), pretty_json(edited or {}), "proposed", "edited")


def cap(text: str, limit: int = AUDIT_DIFF_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... truncated ({len(text) - limit} more characters)\n"


def substitute_refs(value: Any, mapping: dict[str, str]) -> Any:
    """Point references to an edited artifact (`artifact://<original>`) at the edited version,
    so an action that names its draft by ref runs with the reviewer's version."""
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [substitute_refs(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: substitute_refs(v, mapping) for k, v in value.items()}
    return value
