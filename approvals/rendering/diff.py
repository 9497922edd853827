"""Unified diffs → files → hunks → numbered, highlighted lines, for the unified and the
side-by-side view. Parsing follows the hunk headers' line counts, so content lines that
look like headers ("--- x" removed from a file) are read as content."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from approvals.rendering.highlight import highlight_lines, lexer_for

HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
GIT_RE = re.compile(r"^diff --git a/(.*) b/(.*)$")


@dataclass
class Line:
    kind: str  # "ctx", "add", "del", "note"
    text: str
    old_no: int | None = None
    new_no: int | None = None
    html: str = ""


@dataclass
class Hunk:
    header: str
    lines: list[Line] = field(default_factory=list)


@dataclass
class DiffFile:
    old_path: str = ""
    new_path: str = ""
    status: str = "modified"  # added, deleted, renamed, modified, binary
    hunks: list[Hunk] = field(default_factory=list)
    additions: int = 0
    deletions: int = 0

    @property
    def path(self) -> str:
        if self.status == "deleted":
            return self.old_path
        return self.new_path or self.old_path

    @property
    def display_name(self) -> str:
        if self.status == "renamed" and self.old_path != self.new_path:
            return f"{self.old_path} → {self.new_path}"
        return self.path


def _strip_prefix(path: str) -> str:
    path = path.split("\t", 1)[0].strip()
    if path == "/dev/null":
        return ""
    if path.startswith(("a/", "b/")):
        return path[2:]
    return path


def parse(text: str) -> list[DiffFile]:
    files: list[DiffFile] = []
    cur: DiffFile | None = None
    hunk: Hunk | None = None
    old_left = new_left = 0
    old_no = new_no = 0
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if hunk is not None and (old_left > 0 or new_left > 0):
            tag, body = line[:1], line[1:]
            if tag == " " or line == "":
                hunk.lines.append(Line("ctx", body, old_no, new_no))
                old_no, new_no = old_no + 1, new_no + 1
                old_left, new_left = old_left - 1, new_left - 1
                continue
            if tag == "-":
                hunk.lines.append(Line("del", body, old_no, None))
                old_no += 1
                old_left -= 1
                cur.deletions += 1  # type: ignore[union-attr]
                continue
            if tag == "+":
                hunk.lines.append(Line("add", body, None, new_no))
                new_no += 1
                new_left -= 1
                cur.additions += 1  # type: ignore[union-attr]
                continue
            if tag == "\\":
                hunk.lines.append(Line("note", line))
                continue
            # A malformed hunk (counts too large): fall through and treat as a header.
            old_left = new_left = 0
        if line.startswith("\\") and hunk is not None:
            hunk.lines.append(Line("note", line))
            continue
        git = GIT_RE.match(line)
        if git:
            cur = DiffFile(old_path=git.group(1), new_path=git.group(2))
            files.append(cur)
            hunk = None
            continue
        if line.startswith("--- ") and i < len(lines) and lines[i].startswith("+++ "):
            old_path, new_path = _strip_prefix(line[4:]), _strip_prefix(lines[i][4:])
            i += 1
            if cur is None or cur.hunks:
                cur = DiffFile()
                files.append(cur)
            cur.old_path, cur.new_path = old_path, new_path
            if not old_path:
                cur.status = "added"
            elif not new_path:
                cur.status = "deleted"
            hunk = None
            continue
        m = HUNK_RE.match(line)
        if m:
            if cur is None:
                cur = DiffFile()
                files.append(cur)
            old_no, new_no = int(m.group(1)), int(m.group(3))
            old_left = int(m.group(2)) if m.group(2) is not None else 1
            new_left = int(m.group(4)) if m.group(4) is not None else 1
            hunk = Hunk(header=line)
            cur.hunks.append(hunk)
            continue
        if cur is not None:
            if line.startswith("new file mode"):
                cur.status = "added"
            elif line.startswith("deleted file mode"):
                cur.status = "deleted"
            elif line.startswith("rename from "):
                cur.status, cur.old_path = "renamed", line[len("rename from ") :]
            elif line.startswith("rename to "):
                cur.status, cur.new_path = "renamed", line[len("rename to ") :]
            elif line.startswith("Binary files") or line.startswith("GIT binary patch"):
                cur.status = "binary"
    return files


def highlight(files: list[DiffFile]) -> None:
    """Fill Line.html: each side of a hunk is highlighted as one text so multi-line tokens
    (strings, comments) colour correctly."""
    for f in files:
        lexer = lexer_for(f.path)
        for hunk in f.hunks:
            old = [ln for ln in hunk.lines if ln.kind in ("ctx", "del")]
            for ln, html in zip(old, highlight_lines([ln.text for ln in old], lexer), strict=True):
                ln.html = html
            new_side = [ln for ln in hunk.lines if ln.kind in ("ctx", "add")]
            new_html = highlight_lines([ln.text for ln in new_side], lexer)
            for ln, html in zip(new_side, new_html, strict=True):
                if ln.kind == "add":
                    ln.html = html
            for ln in hunk.lines:
                if ln.kind == "note":
                    ln.html = escape(ln.text)


def _num(n: int | None) -> str:
    return "" if n is None else str(n)


_SIGN = {"ctx": " ", "add": "+", "del": "-", "note": ""}


def unified_html(f: DiffFile) -> SafeString:
    rows: list[str] = []
    for hunk in f.hunks:
        rows.append(
            f'<tr class="d-hunk"><td class="ln"></td><td class="ln"></td>'
            f'<td class="code">{escape(hunk.header)}</td></tr>'
        )
        for ln in hunk.lines:
            rows.append(
                f'<tr class="d-{ln.kind}"><td class="ln" data-n="{_num(ln.old_no)}"></td>'
                f'<td class="ln" data-n="{_num(ln.new_no)}"></td>'
                f'<td class="code"><span class="sign">{_SIGN[ln.kind]}</span>{ln.html}</td></tr>'
            )
    return mark_safe(
        '<table class="diff diff-unified"><tbody>' + "".join(rows) + "</tbody></table>"
    )


def _pairs(hunk: Hunk) -> list[tuple[Line | None, Line | None]]:
    """Side-by-side rows: a run of deletions faces the run of additions that follows it."""
    rows: list[tuple[Line | None, Line | None]] = []
    dels: list[Line] = []
    adds: list[Line] = []

    def flush() -> None:
        for k in range(max(len(dels), len(adds))):
            rows.append((dels[k] if k < len(dels) else None, adds[k] if k < len(adds) else None))
        dels.clear()
        adds.clear()

    for ln in hunk.lines:
        if ln.kind == "del":
            if adds:
                flush()
            dels.append(ln)
        elif ln.kind == "add":
            adds.append(ln)
        else:
            flush()
            rows.append((ln, ln))
    flush()
    return rows


def _side(ln: Line | None, old: bool) -> str:
    if ln is None:
        return '<td class="ln empty"></td><td class="code empty"></td>'
    n = ln.old_no if old else ln.new_no
    return (
        f'<td class="ln d-{ln.kind}" data-n="{_num(n)}"></td>'
        f'<td class="code d-{ln.kind}">{ln.html}</td>'
    )


def split_html(f: DiffFile) -> SafeString:
    rows: list[str] = []
    for hunk in f.hunks:
        rows.append(
            f'<tr class="d-hunk"><td class="ln"></td><td class="code" colspan="3">'
            f"{escape(hunk.header)}</td></tr>"
        )
        for left, right in _pairs(hunk):
            rows.append(f"<tr>{_side(left, True)}{_side(right, False)}</tr>")
    return mark_safe('<table class="diff diff-split"><tbody>' + "".join(rows) + "</tbody></table>")
