"""The three built-in agents against real files, a real git working copy and a real SQLite
database: approve, reject, edited action, stale approval."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from contextlib import closing

import pytest

from agents.builtin.code_patcher import diff_for_edits
from agents.builtin.demo import make_repo, make_shop
from agents.models import Run, RunStep
from agents.runtime import InvalidRunInput
from agents.runtime.tools import StaleAction, ToolContext
from approvals.models import Artifact, Checkpoint
from approvals.transitions import checkpoint_decide
from tests.factories import PolicyFactory
from tests.hosted.conftest import make_logs

JANITOR = "agents.builtin.log_janitor.LogJanitor"
PATCHER = "agents.builtin.code_patcher.CodePatcher"
SQL = "agents.builtin.sql_patcher.SqlPatcher"


# --- log-janitor ----------------------------------------------------------------------------


@pytest.fixture
def logs(sandbox):
    root = sandbox / "logs"
    files = make_logs(
        root, {"old.log": 10, "sub/older.log": 30, "new.log": 1, "old.txt": 30, "sub/edge.log": 6.9}
    )
    return root, files


def test_it_lists_exactly_the_old_log_files(hosted, start, logs):
    _root, files = logs
    run = start(
        hosted("log-janitor", JANITOR),
        "Delete all log files older than 7 days",
        {"path": "logs", "older_than_days": 7},
    )

    assert run.status == Run.Status.WAITING
    cp = run.checkpoints.get()
    listed = [f["path"] for f in cp.action["args"]["files"]]
    assert listed == [str(files["old.log"]), str(files["sub/older.log"])]
    total = files["old.log"].stat().st_size + files["sub/older.log"].stat().st_size
    assert cp.title.startswith("Delete 2 log files")
    table = cp.artifacts.get(name="files.txt").inline
    assert str(files["sub/older.log"]) in table and f"{total}  total (2 files" in table
    assert cp.artifacts.get(name="files.json").kind == Artifact.Kind.JSON


def test_it_deletes_exactly_the_approved_files(hosted, start, inline, reviewer, logs):
    root, _files = logs
    run = start(hosted("log-janitor", JANITOR), input={"path": str(root)})
    inline(checkpoint_decide, run.checkpoints.get().pk, reviewer, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    remaining = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert remaining == ["new.log", "old.txt", "sub/edge.log"]
    assert run.result["done"][0]["result"]["deleted"] == 2
    assert run.result["summary"].startswith("Deleted 2 log files")


def test_a_big_result_reaches_the_script_whole_and_the_run_completes(
    hosted, start, inline, reviewer, sandbox
):
    """~400 files make a tool result far over the transcript limit: the transcript (what an
    LLM reads) gets a truncated copy, the agent's script and its report the real result, so a
    run whose effects all happened never ends 'failed'."""
    root = sandbox / "many"
    make_logs(root, {f"app-{i:03}.log": 30 for i in range(400)})
    run = start(hosted("log-janitor", JANITOR), input={"path": str(root)})
    inline(checkpoint_decide, run.checkpoints.get().pk, reviewer, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert not any(root.rglob("*.log"))
    assert run.result["done"][0]["result"]["deleted"] == 400
    transcript = [m for m in run.state["messages"] if m["role"] == "tool"]
    assert '"truncated": true' in transcript[-1]["content"]


def test_it_deletes_nothing_when_rejected(hosted, start, inline, reviewer, logs):
    root, files = logs
    run = start(hosted("log-janitor", JANITOR), input={"path": str(root)})
    inline(
        checkpoint_decide,
        run.checkpoints.get().pk,
        reviewer,
        "reject",
        comment="keep them for the audit",
    )

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert all(p.exists() for p in files.values())
    assert run.result["summary"] == "Deleted nothing: rejected by rita: keep them for the audit"
    assert not RunStep.objects.filter(run=run).exists()


def test_it_deletes_only_what_the_reviewer_left_in_the_list(hosted, start, inline, reviewer, logs):
    root, files = logs
    run = start(hosted("log-janitor", JANITOR), input={"path": str(root)})
    cp = run.checkpoints.get()
    args = dict(cp.action["args"])
    args["files"] = [f for f in args["files"] if not f["path"].endswith("older.log")]

    inline(checkpoint_decide, cp.pk, reviewer, "modify", action={"args": args})

    assert not files["old.log"].exists()
    assert files["sub/older.log"].exists()


def test_it_asks_again_when_a_listed_file_changed(hosted, start, inline, reviewer, logs):
    root, files = logs
    run = start(hosted("log-janitor", JANITOR), input={"path": str(root)})
    cp = run.checkpoints.get()
    files["old.log"].write_text("written to again\n")  # now young and different

    inline(checkpoint_decide, cp.pk, reviewer, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert all(p.exists() for p in files.values())  # nothing deleted on the stale approval
    fresh = run.checkpoints.get(status=Checkpoint.Status.PENDING)
    assert "old.log changed since it was listed" in fresh.context["stale_reason"]
    assert [f["path"] for f in fresh.action["args"]["files"]] == [str(files["sub/older.log"])]


def test_it_refuses_a_path_outside_the_sandbox_before_anything(hosted, start, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    agent = hosted("log-janitor", JANITOR)
    for path in (str(outside), "../elsewhere", "/etc"):
        with pytest.raises(InvalidRunInput, match="outside the sandbox roots"):
            start(agent, input={"path": path})
    assert not Run.objects.exists()


def test_it_skips_symlinks_that_point_outside(hosted, start, logs, tmp_path):
    root, _files = logs
    secret = tmp_path / "secret.log"
    secret.write_text("do not delete")
    os.utime(secret, (0, 0))
    (root / "link.log").symlink_to(secret)
    run = start(hosted("log-janitor", JANITOR), input={"path": str(root)})
    listed = [f["path"] for f in run.checkpoints.get().action["args"]["files"]]
    assert str(root / "link.log") not in listed and str(secret) not in listed


# --- code-patcher ---------------------------------------------------------------------------


@pytest.fixture
def repo(sandbox):
    path = sandbox / "repo"
    make_repo(path)
    return path


def git(repo, *args) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


EDIT = {"path": "app/settings.py", "find": "DEBUG = True", "replace": "DEBUG = False"}


def test_it_proposes_a_diff_and_commits_it_on_approval(hosted, start, inline, reviewer, repo):
    run = start(
        hosted("code-patcher", PATCHER),
        "Turn DEBUG off",
        {"repo": "repo", "message": "Turn DEBUG off", "edits": [EDIT]},
    )
    cp = run.checkpoints.get()
    diff = cp.artifacts.get(kind=Artifact.Kind.DIFF).inline
    assert "-DEBUG = True\n+DEBUG = False\n" in diff
    assert cp.action["args"]["patch"] == diff

    inline(checkpoint_decide, cp.pk, reviewer, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert "DEBUG = False" in (repo / "app/settings.py").read_text()
    log = git(repo, "log", "--format=%s%n%b", "-n", "1")
    assert log.startswith("Turn DEBUG off") and f"HITL-Step: {run.pk}:0.0.1" in log
    assert git(repo, "status", "--porcelain") == ""


def test_it_applies_the_edited_patch(hosted, start, inline, reviewer, repo):
    run = start(
        hosted("code-patcher", PATCHER),
        "Turn DEBUG off",
        {"repo": "repo", "message": "Turn DEBUG off", "edits": [EDIT]},
    )
    cp = run.checkpoints.get()
    edited = dict(cp.action["args"])
    edited["patch"] = edited["patch"].replace("+DEBUG = False", '+DEBUG = "reviewed"')

    inline(checkpoint_decide, cp.pk, reviewer, "modify", action={"args": edited})

    assert 'DEBUG = "reviewed"' in (repo / "app/settings.py").read_text()
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED


def test_it_changes_nothing_when_the_patch_is_rejected(hosted, start, inline, reviewer, repo):
    head = git(repo, "rev-parse", "HEAD")
    run = start(
        hosted("code-patcher", PATCHER), "x", {"repo": "repo", "message": "m", "edits": [EDIT]}
    )
    inline(checkpoint_decide, run.checkpoints.get().pk, reviewer, "reject", comment="no")
    assert git(repo, "rev-parse", "HEAD") == head
    assert "DEBUG = True" in (repo / "app/settings.py").read_text()


def test_it_recomputes_a_patch_that_no_longer_applies(hosted, start, inline, reviewer, repo):
    run = start(
        hosted("code-patcher", PATCHER),
        "x",
        {"repo": "repo", "message": "Turn DEBUG off", "edits": [EDIT]},
    )
    cp = run.checkpoints.get()
    # someone changes the lines around the edit meanwhile
    text = (repo / "app/settings.py").read_text().replace('TIME_ZONE = "UTC"', 'TIME_ZONE = "CET"')
    (repo / "app/settings.py").write_text(text)
    git(repo, "commit", "-qam", "CET")
    text = text.replace("import os\n", "import os\nimport sys\n")
    (repo / "app/settings.py").write_text(text)
    git(repo, "commit", "-qam", "sys")
    stale_patch = cp.action["args"]["patch"]
    edited = stale_patch.replace("@@ -1,5 +1,5 @@", "@@ -1,5 +1,5 @@")  # still the old context
    inline(
        checkpoint_decide,
        cp.pk,
        reviewer,
        "modify",
        action={
            "args": {
                **cp.action["args"],
                "patch": edited.replace(' TIME_ZONE = "UTC"', ' TIME_ZONE = "UTC" '),
            }
        },
    )

    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    fresh = run.checkpoints.get(status=Checkpoint.Status.PENDING)
    assert "no longer applies" in fresh.context["stale_reason"]
    assert "+import sys" not in fresh.action["args"]["patch"]
    assert " import sys\n" in fresh.action["args"]["patch"]  # computed on the current file
    assert "DEBUG = True" in (repo / "app/settings.py").read_text()

    inline(checkpoint_decide, fresh.pk, reviewer, "approve")
    assert "DEBUG = False" in (repo / "app/settings.py").read_text()


def test_it_reports_a_literal_patch_that_no_longer_applies(hosted, start, inline, reviewer, repo):
    patch = diff_for_edits(repo, [EDIT])  # as an LLM would hand it over: a literal diff
    run = start(
        hosted("code-patcher", PATCHER), "x", {"repo": "repo", "message": "m", "patch": patch}
    )
    (repo / "app/settings.py").write_text("DEBUG = 1\n")
    git(repo, "commit", "-qam", "rewrite")

    inline(checkpoint_decide, run.checkpoints.get().pk, reviewer, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert run.result["done"] == []
    assert "no longer applies" in run.result["not_done"][0]["why"]
    assert run.result["summary"].startswith("The repository was not changed")


# --- sql-patcher ----------------------------------------------------------------------------


@pytest.fixture
def shop(db, sandbox):
    PolicyFactory(name="DBA", match_tool="sql_*", stages=[{"role": "dba", "approvals": 1}])
    path = sandbox / "shop.sqlite3"
    make_shop(path)
    return path


def rows(path, sql):
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


VOID = "UPDATE orders SET status = 'void' WHERE created < '2020-01-01'"


def test_it_previews_and_executes_an_update(hosted, start, inline, dba, shop):
    run = start(hosted("sql-patcher", SQL, database="shop.sqlite3"), "void", {"sql": VOID})
    cp = run.checkpoints.get()
    assert cp.action["args"] == {"sql": VOID, "expected_rows": 10}
    preview = cp.artifacts.get(name="preview.md").inline
    assert "**10 rows affected**" in preview and "status='void'" in preview
    assert rows(shop, "SELECT COUNT(*) FROM orders WHERE status = 'void'") == [(0,)]  # rolled back

    inline(checkpoint_decide, cp.pk, dba, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert rows(shop, "SELECT COUNT(*) FROM orders WHERE status = 'void'") == [(10,)]
    assert run.result["summary"] == f"Changed 10 rows: {VOID}"


def test_it_leaves_the_database_alone_when_rejected(hosted, start, inline, dba, shop):
    run = start(hosted("sql-patcher", SQL, database="shop.sqlite3"), "void", {"sql": VOID})
    inline(checkpoint_decide, run.checkpoints.get().pk, dba, "reject", comment="wrong year")
    assert rows(shop, "SELECT COUNT(*) FROM orders WHERE status = 'void'") == [(0,)]


def test_it_asks_again_when_the_row_count_changed(hosted, start, inline, dba, shop):
    run = start(hosted("sql-patcher", SQL, database="shop.sqlite3"), "void", {"sql": VOID})
    cp = run.checkpoints.get()
    with closing(sqlite3.connect(shop)) as conn, conn:
        conn.execute("INSERT INTO orders VALUES (99, 'late', '2019-12-31', 'open', 1)")

    inline(checkpoint_decide, cp.pk, dba, "approve")

    assert rows(shop, "SELECT COUNT(*) FROM orders WHERE status = 'void'") == [(0,)]
    run.refresh_from_db()
    fresh = run.checkpoints.get(status=Checkpoint.Status.PENDING)
    assert fresh.action["args"]["expected_rows"] == 11
    assert "now affects 11 rows, not 10" in fresh.context["stale_reason"]


def test_it_executes_an_edited_statement(hosted, start, inline, dba, shop):
    run = start(hosted("sql-patcher", SQL, database="shop.sqlite3"), "void", {"sql": VOID})
    cp = run.checkpoints.get()
    narrower = "UPDATE orders SET status = 'void' WHERE created < '2019-01-01'"
    count = rows(shop, "SELECT COUNT(*) FROM orders WHERE created < '2019-01-01'")[0][0]

    inline(
        checkpoint_decide,
        cp.pk,
        dba,
        "modify",
        action={"args": {"sql": narrower, "expected_rows": count}},
    )

    assert rows(shop, "SELECT COUNT(*) FROM orders WHERE status = 'void'") == [(count,)]


def test_it_rolls_back_when_the_count_differs_and_never_applies_twice(sandbox, shop, hosted):
    from agents.builtin.sql_patcher import sql_execute

    agent = hosted("sql-patcher", SQL, database="shop.sqlite3")
    ctx = ToolContext(
        run=None, agent=agent, config={"database": "shop.sqlite3"}, idempotency_key="run:1.0.1"
    )
    bump = "UPDATE orders SET total_cents = total_cents + 1 WHERE id <= 3"
    before = rows(shop, "SELECT SUM(total_cents) FROM orders")[0][0]
    with pytest.raises(StaleAction, match="affected 3 rows, not 2"):
        sql_execute(ctx, bump, expected_rows=2)
    assert rows(shop, "SELECT SUM(total_cents) FROM orders")[0][0] == before

    assert sql_execute(ctx, bump, expected_rows=3) == {"rows": 3, "statement": bump}
    ctx.recovering = True
    assert sql_execute(ctx, bump, expected_rows=3) == {"rows": 3, "recovered": True}
    assert rows(shop, "SELECT SUM(total_cents) FROM orders")[0][0] == before + 3


def test_it_routes_a_statement_without_where_as_critical(hosted, start, shop):
    run = start(
        hosted("sql-patcher", SQL, database="shop.sqlite3"), "all", {"sql": "DELETE FROM orders"}
    )
    cp = run.checkpoints.get()
    assert cp.risk == "critical"
    assert "no WHERE clause" in cp.context["why_approval"][1]
    assert cp.action["args"]["expected_rows"] == 40


def test_it_refuses_anything_but_update_or_delete(hosted, start, shop):
    agent = hosted("sql-patcher", SQL, database="shop.sqlite3")
    for sql in ("DROP TABLE orders", "UPDATE orders SET status='x'; DROP TABLE orders"):
        with pytest.raises(InvalidRunInput):
            start(agent, input={"sql": sql})
