"""Titles the client writes itself (from a command, a question, a template) are one line: the
portal refuses line breaks and control characters in a title with 400. (The portal's own
`core.text.one_line` does the same for its titles; this package imports nothing of it.)"""

from __future__ import annotations

import re

_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line of at most `limit` characters (each run of line breaks and control
    characters becomes one space)."""
    flat = _BREAKS.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
