"""The review page shows everything needed to decide, rendered on the server."""

from __future__ import annotations

from django.urls import reverse

from agents.models import RunEvent
from approvals.models import Artifact
from approvals.transitions import ArtifactInput, checkpoint_decide
from tests.portal.helpers import review_url

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def test_it_shows_header_context_action_and_routing(client_for, reviewer, ops_cp):
    html = client_for(reviewer).get(review_url(ops_cp)).content.decode()
    assert ops_cp.title in html and "Bot" in html and "Medium risk" in html
    assert "Clean up the log directory" in html  # original request
    assert "<li>Found 3 old files</li>" in html  # reasoning steps
    assert 'class="tool-name">delete_files<' in html
    assert "/tmp/a.log" in html  # arguments, pretty-printed
    assert "no policy matched" in html  # routing: policy, stage, approvals so far
    assert "<strong data-approvals>0/1</strong>" in html
    assert f'data-deadline="{ops_cp.deadline.isoformat()}"' in html


def test_it_renders_a_diff_with_line_numbers_colours_and_both_layouts(client_for, reviewer, ops_cp):
    html = client_for(reviewer).get(review_url(ops_cp)).content.decode()
    assert "app/settings.py" in html and "+1" in html and "−1" in html
    assert '<table class="diff diff-unified">' in html and '<table class="diff diff-split">' in html
    assert '<tr class="d-del"><td class="ln" data-n="2"></td><td class="ln" data-n=""></td>' in html
    assert '<tr class="d-add"><td class="ln" data-n=""></td><td class="ln" data-n="2"></td>' in html
    # Syntax highlighted (Pygments tokens) and escaped.
    assert '<span class="kc">True</span>' in html
    assert "&quot;DEBUG&quot;" in html


def test_it_renders_logs_json_markdown_images_and_binaries(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint(
        artifacts=[
            ArtifactInput(
                name="run.log",
                kind="log",
                content="starting\nERROR disk full\n\x1b[33mWARNING slow\x1b[0m\n",
            ),
            ArtifactInput(name="rows.json", kind="json", content='{"rows": [1, 2], "ok": true}'),
            ArtifactInput(name="broken.json", kind="json", content="{oops"),
            ArtifactInput(
                name="notes.md",
                kind="markdown",
                content="# Plan\n\n**bold** <script>alert(1)</script>\n"
                "[x](javascript:alert(1)) ![t](http://evil/t.png)\n",
            ),
            ArtifactInput(name="shot.png", kind="image", content=PNG, content_type="image/png"),
            ArtifactInput(name="blob.bin", kind="file", content=b"\x00\x01\x02"),
        ]
    )
    html = client_for(reviewer).get(review_url(cp)).content.decode()
    assert '<tr class="log-error"><td class="ln" data-n="2"></td>' in html
    assert '<tr class="log-warn"><td class="ln" data-n="3"></td>' in html
    assert "\x1b" not in html
    assert '<span class="nt">&quot;rows&quot;</span>' in html  # pretty, highlighted JSON
    assert "Not valid JSON" in html
    assert "<h1>Plan</h1>" in html and "<strong>bold</strong>" in html
    assert "<script>alert" not in html and "javascript:" not in html and "http://evil" not in html
    png = Artifact.objects.get(name="shot.png")
    img_url = reverse("admin:approvals_checkpoint_artifact", args=[cp.pk, png.pk]) + "?inline=1"
    assert f'src="{img_url}"' in html
    assert "Not shown here; use the download link." in html  # the binary


def test_it_truncates_big_artifacts_with_a_download_link(
    client_for, reviewer, make_checkpoint, settings
):
    settings.HITL_ARTIFACT_RENDER_LIMIT = 2048
    big = "".join(f"line {i}\n" for i in range(2000))
    cp = make_checkpoint(artifacts=[ArtifactInput(name="big.log", kind="log", content=big)])
    html = client_for(reviewer).get(review_url(cp)).content.decode()
    assert "showing the beginning only" in html
    assert "line 10\n" not in html and 'data-n="50"' in html and "line 1999" not in html
    artifact = cp.artifacts.get()
    download = reverse("admin:approvals_checkpoint_artifact", args=[cp.pk, artifact.pk])
    assert download in html
    resp = client_for(reviewer).get(download)
    assert b"".join(resp.streaming_content if resp.streaming else [resp.content]) == big.encode()


def test_it_serves_artifacts_as_downloads_that_cannot_run_script(
    client_for, reviewer, make_checkpoint
):
    cp = make_checkpoint(
        artifacts=[
            ArtifactInput(
                name="x.svg",
                kind="image",
                content="<svg onload=alert(1)/>",
                content_type="image/svg+xml",
            ),
            ArtifactInput(name="shot.png", kind="image", content=PNG, content_type="image/png"),
        ]
    )
    c = client_for(reviewer)
    svg, png = cp.artifacts.get(name="x.svg"), cp.artifacts.get(name="shot.png")
    url = reverse("admin:approvals_checkpoint_artifact", args=[cp.pk, svg.pk])
    resp = c.get(url + "?inline=1")
    assert resp["Content-Disposition"].startswith("attachment")
    assert (
        "sandbox" in resp["Content-Security-Policy"] and resp["X-Content-Type-Options"] == "nosniff"
    )
    resp = c.get(reverse("admin:approvals_checkpoint_artifact", args=[cp.pk, png.pk]) + "?inline=1")
    assert resp["Content-Disposition"].startswith("inline") and resp["Content-Type"] == "image/png"
    # An artifact id of another checkpoint is a 404 even for a visible checkpoint.
    other = make_checkpoint(artifacts=[ArtifactInput(name="o.txt", content="o")])
    stray = reverse("admin:approvals_checkpoint_artifact", args=[cp.pk, other.artifacts.get().pk])
    assert c.get(stray).status_code == 404


def test_it_shows_the_run_timeline(
    client_for, reviewer, reviewer2, dba, make_checkpoint, dba_policy
):
    first = make_checkpoint(title="Earlier step")
    run = first.run
    RunEvent.objects.create(run=run, kind="step", message="Listed /var/log")
    checkpoint_decide(first.pk, reviewer2, "reject", comment="Too broad")
    from agents.transitions import run_resume
    from audit.events import Actor

    run_resume(run.pk, Actor.system("test"))
    RunEvent.objects.create(run=run, kind="tool_call", message="Narrowed to 3 files")
    secret = make_checkpoint(
        run=run, title="Secret DBA thing", action={"tool": "sql_execute", "args": {}}
    )
    current = make_checkpoint(run=run, title="Now this one")
    html = client_for(reviewer).get(review_url(current)).content.decode()
    for text in (
        "Listed /var/log",
        "Narrowed to 3 files",
        "Earlier step",
        "raj: Reject",
        "Too broad",
        "(this checkpoint)",
    ):
        assert text in html, text
    assert html.index("Listed /var/log") < html.index("Narrowed to 3 files")
    # Another role's checkpoint of the same run appears without its details.
    assert "Secret DBA thing" not in html and "checkpoint (another role)" in html
    assert review_url(secret) not in html


def test_it_offers_next_and_previous_in_queue_order(client_for, reviewer, make_checkpoint):
    a = make_checkpoint(title="a", expires_in=100)
    b = make_checkpoint(title="b", expires_in=200)
    c = make_checkpoint(title="c", expires_in=300)
    page = client_for(reviewer).get(review_url(b))
    assert page.context["prev_item"] == a and page.context["next_item"] == c
    html = page.content.decode()
    assert f'data-next-url="{review_url(c)}"' in html and f'data-prev-url="{review_url(a)}"' in html


def test_it_shows_a_decided_checkpoint_with_its_outcome(
    client_for, reviewer, reviewer2, make_checkpoint
):
    cp = make_checkpoint()
    checkpoint_decide(cp.pk, reviewer2, "reject", comment="No backups yet")
    html = client_for(reviewer).get(review_url(cp)).content.decode()
    assert 'id="decision-form"' not in html
    assert "No backups yet" in html and "raj" in html and "checkpoint.rejected" in html
