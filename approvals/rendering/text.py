"""Logs, text files, JSON and markdown → safe HTML."""

from __future__ import annotations

import json
import re

import markdown as md
import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from approvals.rendering.highlight import highlight_lines, lexer_for, lexer_named

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
LEVEL_RE = re.compile(r"\b(ERROR|FATAL|CRITICAL|Traceback|WARN(?:ING)?)\b")
# Markdown from agents is untrusted: no raw HTML beyond this allowlist, no remote images
# (tracking pixels), links only to http(s)/mailto and never with an opener.
MARKDOWN_TAGS = (
    set(nh3.ALLOWED_TAGS)
    | {"pre", "code", "table", "thead", "tbody", "tr", "th", "td", "hr", "del"}
) - {"img"}


def numbered_table(html_lines: list[str], classes: list[str] | None = None) -> SafeString:
    rows = []
    for n, html in enumerate(html_lines, start=1):
        css = f' class="{classes[n - 1]}"' if classes and classes[n - 1] else ""
        rows.append(f'<tr{css}><td class="ln" data-n="{n}"></td><td class="code">{html}</td></tr>')
    return mark_safe('<table class="numbered"><tbody>' + "".join(rows) + "</tbody></table>")


def log_html(text: str) -> SafeString:
    lines = ANSI_RE.sub("", text).splitlines()
    classes = []
    for line in lines:
        m = LEVEL_RE.search(line)
        if not m:
            classes.append("")
        elif m.group(1).startswith("WARN"):
            classes.append("log-warn")
        else:
            classes.append("log-error")
    return numbered_table([escape(line) for line in lines], classes)


def file_html(text: str, filename: str) -> SafeString:
    lines = text.splitlines()
    return numbered_table(highlight_lines(lines, lexer_for(filename)))


def json_html(text: str) -> tuple[SafeString, str]:
    """Pretty, highlighted JSON; falls back to plain numbered text (with the parse error)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return file_html(text, ""), f"Not valid JSON ({exc}); shown as text."
    except RecursionError:
        return file_html(text, ""), "JSON nested too deeply to pretty-print; shown as text."
    try:
        pretty = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    except RecursionError:
        return file_html(text, ""), "JSON nested too deeply to pretty-print; shown as text."
    return numbered_table(highlight_lines(pretty.splitlines(), lexer_named("json"))), ""


def json_value_html(value) -> SafeString:
    """A JSON value (an action's args) pretty-printed and highlighted, without line numbers."""
    pretty = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    lines = highlight_lines(pretty.splitlines(), lexer_named("json"))
    return mark_safe('<pre class="json">' + "\n".join(lines) + "</pre>")


def markdown_html(text: str) -> SafeString:
    raw = md.markdown(text, extensions=["fenced_code", "tables", "sane_lists"])
    clean = nh3.clean(
        raw,
        tags=MARKDOWN_TAGS,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)
