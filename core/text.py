"""Text from elsewhere (an agent's title, a receiver's reply) made safe to put where one line
is expected: an email header, a notification's preview, a stored error."""

from __future__ import annotations


def one_line(text: str, limit: int) -> str:
    """`text` as one line of printable characters (line breaks, tabs and other control
    characters become spaces, runs of spaces one), at most `limit` characters ("…" ends one
    that was cut)."""
    printable = "".join(c if c.isprintable() else " " for c in text or "")
    line = " ".join(printable.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
