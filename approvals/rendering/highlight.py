"""Pygments highlighting that yields one balanced HTML fragment per source line, so diffs,
logs and files can be laid out in line-numbered tables."""

from __future__ import annotations

from functools import lru_cache

from django.utils.html import escape
from pygments.formatters.html import _get_ttype_class
from pygments.lexer import Lexer
from pygments.lexers import JsonLexer, TextLexer, get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

# Lines longer than this are not highlighted (minified files would take seconds).
MAX_HIGHLIGHT_LINE = 2000
MAX_HIGHLIGHT_CHARS = 400_000


@lru_cache(maxsize=256)
def lexer_for(filename: str) -> Lexer:
    options = {"stripnl": False, "ensurenl": False, "tabsize": 0}
    try:
        return get_lexer_for_filename(filename or "", **options)
    except ClassNotFound:
        return TextLexer(**options)


def lexer_named(name: str) -> Lexer:
    if name == "json":
        return JsonLexer(stripnl=False, ensurenl=False)
    try:
        return get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def _plain(lines: list[str]) -> list[str]:
    return [escape(line) for line in lines]


def highlight_lines(lines: list[str], lexer: Lexer) -> list[str]:
    """HTML for each input line (without its newline); spans never cross lines."""
    if not lines:
        return []
    if (
        isinstance(lexer, TextLexer)
        or max(len(line) for line in lines) > MAX_HIGHLIGHT_LINE
        or sum(len(line) for line in lines) > MAX_HIGHLIGHT_CHARS
    ):
        return _plain(lines)
    text = "\n".join(lines) + "\n"
    out: list[str] = []
    # (css class, raw text) runs of the current line; neighbours of one class are merged so
    # a string literal is one span, not three.
    runs: list[list[str]] = []

    def flush() -> None:
        out.append(
            "".join(f'<span class="{c}">{escape(t)}</span>' if c else escape(t) for c, t in runs)
        )
        runs.clear()

    for ttype, value in lexer.get_tokens(text):
        css = _get_ttype_class(ttype)
        for i, part in enumerate(value.split("\n")):
            if i:
                flush()
            if not part:
                continue
            if runs and runs[-1][0] == css:
                runs[-1][1] += part
            else:
                runs.append([css, part])
    if runs:
        flush()
    # Lexers can add or drop a trailing newline; the table must match the source exactly.
    if len(out) < len(lines):
        out.extend(_plain(lines[len(out) :]))
    return out[: len(lines)]
