"""Text from elsewhere (an agent's title, a receiver's reply) on one line: refused at the edge
where a label must be one (`check_single_line`), or made one where it is shown (`one_line`:
an email header, a notification's preview, a stored error, a title the portal derives).

Titles, tool names, option labels and other names are shown on one line in every channel: a
line break in one makes Django refuse the email (BadHeaderError) and lets an agent forge lines
of a message. So they are single-line text, checked at the edge (400 naming the field)."""

from __future__ import annotations

import re

from core.exceptions import InvalidInput

# C0 and C1 control characters (CR, LF, tab, escape, NEL, ...) and the Unicode line and
# paragraph separators: everything `str.splitlines` or a terminal treats as a break or a
# command; Unicode categories Cc, Zl and Zp exactly. The pattern (for JSON Schema) and the
# check below are the same rule.
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_single_line(text: str, field: str = "non_field_errors") -> None:
    """Raise InvalidInput on `field` if `text` contains a line break or another control
    character, naming the first one and where it is."""
    found = _BREAKS.search(text)
    if found is not None:
        raise InvalidInput(
            f"Must be a single line without control characters (found U+{ord(found.group()):04X} "
            f"at position {found.start()}).",
            field,
        )


def one_line(text: str, limit: int) -> str:
    """`text` as one line of printable characters (line breaks, tabs and other control
    characters become spaces, runs of spaces one), at most `limit` characters ("…" ends one
    that was cut)."""
    printable = "".join(c if c.isprintable() else " " for c in text or "")
    line = " ".join(printable.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
