"""Diff parsing and the text renderers (pure functions)."""

from __future__ import annotations

from approvals.rendering import diff, text
from approvals.rendering.highlight import highlight_lines, lexer_for

MULTI = """\
diff --git a/src/app.py b/src/app.py
index 1111111..2222222 100644
--- a/src/app.py
+++ b/src/app.py
@@ -10,4 +10,5 @@ def main():
     x = 1
---- not a header, a removed line starting with dashes
+++++ an added line starting with pluses
+    y = 2
     return x
\\ No newline at end of file
diff --git a/new.md b/new.md
new file mode 100644
--- /dev/null
+++ b/new.md
@@ -0,0 +1,2 @@
+# Title
+text
diff --git a/old.txt b/old.txt
deleted file mode 100644
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
diff --git a/a.bin b/a.bin
Binary files a/a.bin and b/a.bin differ
diff --git a/x.py b/y.py
similarity index 90%
rename from x.py
rename to y.py
"""


def test_it_parses_files_hunks_and_line_numbers():
    files = diff.parse(MULTI)
    assert [(f.path, f.status) for f in files] == [
        ("src/app.py", "modified"),
        ("new.md", "added"),
        ("old.txt", "deleted"),
        ("a.bin", "binary"),
        ("y.py", "renamed"),
    ]
    app = files[0]
    assert (app.additions, app.deletions) == (2, 1)
    lines = app.hunks[0].lines
    assert [(ln.kind, ln.old_no, ln.new_no) for ln in lines] == [
        ("ctx", 10, 10),
        ("del", 11, None),
        ("add", None, 11),
        ("add", None, 12),
        ("ctx", 12, 13),
        ("note", None, None),
    ]
    assert lines[1].text == "--- not a header, a removed line starting with dashes"
    assert files[4].display_name == "x.py → y.py"


def test_it_parses_plain_unified_diffs_without_git_headers():
    files = diff.parse("--- a.txt\n+++ b.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n")
    assert len(files) == 1 and files[0].path == "b.txt"
    assert (files[0].additions, files[0].deletions) == (1, 1)


def test_it_pairs_deletions_with_additions_side_by_side():
    [f] = diff.parse("--- a\n+++ b\n@@ -1,3 +1,2 @@\n ctx\n-old1\n-old2\n+new1\n")
    pairs = diff._pairs(f.hunks[0])
    assert [(left and left.text, right and right.text) for left, right in pairs] == [
        ("ctx", "ctx"),
        ("old1", "new1"),
        ("old2", None),
    ]


def test_it_highlights_multiline_tokens_per_line_with_balanced_spans():
    lines = ['s = """one', 'two"""', "x = 1"]
    html = highlight_lines(lines, lexer_for("a.py"))
    assert len(html) == 3
    for h in html:
        assert h.count("<span") == h.count("</span>")
    assert html[1].startswith('<span class="s2">two&quot;&quot;&quot;</span>') or "two" in html[1]


def test_it_escapes_everything():
    [f] = diff.parse("--- a.html\n+++ b.html\n@@ -1 +1 @@\n-<b>x</b>\n+<script>y</script>\n")
    diff.highlight([f])
    html = diff.unified_html(f) + diff.split_html(f)
    assert ("<script>" not in html and "&lt;script&gt;" in html) or "&lt;" in html


def test_it_sanitizes_markdown():
    html = text.markdown_html(
        '<img src=x onerror=alert(1)> <a href="javascript:x">l</a> '
        '<a href="https://ok.example">ok</a>\n\n| a |\n|---|\n| 1 |\n'
    )
    assert "onerror" not in html and "javascript:" not in html and "<img" not in html
    assert 'href="https://ok.example"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert "<table>" in html


def test_it_falls_back_to_text_for_invalid_json():
    body, note = text.json_html("{nope")
    assert "Not valid JSON" in note and 'data-n="1"' in body
