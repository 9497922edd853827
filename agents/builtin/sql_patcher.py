"""sql-patcher: proposes one UPDATE or DELETE against the agent's configured SQLite database
(`config.database`, a file inside a sandbox root).

The checkpoint carries a preview artifact: the affected row count and sample rows before and
after (computed by running the statement in a transaction that is rolled back). On approval it
executes in a transaction and rolls back if the affected row count differs from the preview;
then a fresh checkpoint shows the new count.

Exactly-once: the same transaction records the step's idempotency key in a `_hitl_applied`
table of the target database, so a retried step finds its own commit instead of repeating it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from agents.runtime import HostedAgent, InvalidRunInput, Plan, PlanView, Preview, tool
from agents.runtime.rules import sql_without_where
from agents.runtime.sandbox import resolve_in_sandbox
from agents.runtime.tools import StaleAction, ToolContext, ToolError
from approvals.artifacts import ArtifactInput

SAMPLE_ROWS = 5
MARKER_TABLE = "_hitl_applied"

_UPDATE = re.compile(
    r"^\s*update\s+(?P<table>[A-Za-z_]\w*)\s+set\s+.+?(?:\s+where\s+(?P<where>.+?))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_DELETE = re.compile(
    r"^\s*delete\s+from\s+(?P<table>[A-Za-z_]\w*)(?:\s+where\s+(?P<where>.+?))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


@dataclass
class Statement:
    sql: str
    verb: str
    table: str
    where: str  # "" = every row


def parse(sql: str) -> Statement:
    body = sql.strip().rstrip(";").strip()
    if ";" in body:
        raise ToolError("one statement at a time (no ';' inside the statement)")
    for verb, pattern in (("UPDATE", _UPDATE), ("DELETE", _DELETE)):
        match = pattern.match(body)
        if match:
            return Statement(body, verb, match["table"], (match["where"] or "").strip())
    raise ToolError("only a single UPDATE ... SET ... [WHERE ...] or DELETE FROM ... [WHERE ...]")


def database_path(ctx: ToolContext) -> Path:
    value = ctx.config.get("database")
    if not value:
        raise ToolError('the agent has no database configured (config: {"database": ...})')
    return resolve_in_sandbox(value)


def connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT/ROLLBACK).
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=20, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def _where(stmt: Statement) -> str:
    return f" WHERE {stmt.where}" if stmt.where else ""


def count_rows(conn: sqlite3.Connection, stmt: Statement) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {stmt.table}{_where(stmt)}").fetchone()[0]


def _validate(args: dict, ctx: ToolContext) -> None:
    stmt = parse(args["sql"])
    path = database_path(ctx)
    with closing(connect(path)) as conn:
        try:
            conn.execute(f"EXPLAIN {stmt.sql}")
        except sqlite3.Error as exc:
            raise ToolError(f"the statement does not compile: {exc}") from None


@tool(requires_approval=True, risk="high", validate=_validate)
def sql_execute(ctx: ToolContext, sql: str, expected_rows: int | None = None) -> dict:
    """Run one UPDATE or DELETE against the configured database.

    Args:
        sql: a single UPDATE or DELETE statement
        expected_rows: the affected row count shown for approval (filled in by the portal)
    """
    stmt = parse(sql)
    with closing(connect(database_path(ctx))) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} "
            "(key TEXT PRIMARY KEY, at TEXT NOT NULL, rows INTEGER NOT NULL)"
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute(
                f"SELECT rows FROM {MARKER_TABLE} WHERE key = ?", [ctx.idempotency_key]
            ).fetchone()
            if done is not None:  # an earlier attempt of this step committed
                conn.execute("ROLLBACK")
                return {"rows": done["rows"], "recovered": True}
            rows = conn.execute(stmt.sql).rowcount
            if expected_rows is not None and rows != expected_rows:
                conn.execute("ROLLBACK")
                raise StaleAction(
                    f"the statement affected {rows} rows, not {expected_rows} as previewed; "
                    "rolled back"
                )
            conn.execute(
                f"INSERT INTO {MARKER_TABLE} (key, at, rows) VALUES (?, datetime('now'), ?)",
                [ctx.idempotency_key, rows],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise ToolError(f"the statement failed and was rolled back: {exc}") from None
    return {"rows": rows, "statement": stmt.sql}


@sql_execute.preview
def _preview(args: dict, ctx: ToolContext) -> Preview:
    stmt = parse(args["sql"])
    path = database_path(ctx)
    with closing(connect(path)) as conn:
        conn.execute("BEGIN")
        try:
            count = count_rows(conn, stmt)
            before = [
                dict(r)
                for r in conn.execute(
                    f"SELECT rowid AS _rowid, * FROM {stmt.table}{_where(stmt)} LIMIT {SAMPLE_ROWS}"
                )
            ]
            conn.execute(stmt.sql)
            ids = [r["_rowid"] for r in before]
            marks = ",".join("?" * len(ids))
            after = (
                [
                    dict(r)
                    for r in conn.execute(
                        f"SELECT rowid AS _rowid, * FROM {stmt.table} WHERE rowid IN ({marks})", ids
                    )
                ]
                if ids
                else []
            )
        except sqlite3.Error as exc:
            raise ToolError(f"the statement cannot be previewed: {exc}") from None
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    after_by_id = {r["_rowid"]: r for r in after}
    samples = [{"before": r, "after": after_by_id.get(r["_rowid"])} for r in before]
    scope = f"WHERE {stmt.where}" if stmt.where else "EVERY ROW (no WHERE clause)"
    return Preview(
        title=f"{stmt.verb} {count} rows in {stmt.table} ({path.name})",
        summary=f"{stmt.sql}\n\nAffects {count} rows of {stmt.table} in {path} ({scope}). "
        f"Executed in a transaction that is rolled back if the count differs at approval.",
        args={"sql": stmt.sql, "expected_rows": count},
        artifacts=[
            ArtifactInput(
                name="preview.json",
                kind="json",
                content=json.dumps(
                    {
                        "database": str(path),
                        "statement": stmt.sql,
                        "affected_rows": count,
                        "samples": samples,
                    },
                    indent=2,
                    default=str,
                ),
            ),
            ArtifactInput(
                name="preview.md", kind="markdown", content=_markdown(stmt, count, samples)
            ),
        ],
    )


def _markdown(stmt: Statement, count: int, samples: list[dict]) -> str:
    lines = [f"**{count} rows affected** by `{stmt.sql}`", ""]
    if not samples:
        return "\n".join(lines)
    cols = [c for c in samples[0]["before"] if c != "_rowid"]
    lines += ["| rowid | " + " | ".join(cols) + " | after |", "|---" * (len(cols) + 2) + "|"]
    for s in samples:
        after = (
            "deleted"
            if s["after"] is None
            else ", ".join(
                f"{c}={s['after'][c]!r}" for c in cols if s["after"][c] != s["before"][c]
            )
            or "unchanged"
        )
        lines.append(
            f"| {s['before']['_rowid']} | "
            + " | ".join(str(s["before"][c]) for c in cols)
            + f" | {after} |"
        )
    return "\n".join(lines) + "\n"


@sql_execute.revalidate
def _same_count(args: dict, ctx: ToolContext) -> None:
    expected = args.get("expected_rows")
    if expected is None:
        return
    stmt = parse(args["sql"])
    with closing(connect(database_path(ctx))) as conn:
        now = count_rows(conn, stmt)
    if now != expected:
        raise StaleAction(f"the statement now affects {now} rows, not {expected} as previewed")


@sql_execute.refresh
def _recount(args: dict, ctx: ToolContext) -> dict:
    return {"sql": args["sql"]}  # the preview counts again


class SqlPatcher(HostedAgent):
    name = "SQL patcher"
    description = "Proposes one UPDATE/DELETE with a preview; runs it in a checked transaction."
    tools = [sql_execute]
    rules = [sql_without_where()]
    default_task = "Void orders created before 2020"
    default_input = {"sql": "UPDATE orders SET status = 'void' WHERE created < '2020-01-01'"}
    default_config = {"database": "shop.sqlite3"}

    def clean_input(self, task: str, data: dict) -> dict:
        if not isinstance(data.get("sql"), str):
            raise InvalidRunInput({"input": "sql: a statement is required"})
        try:
            parse(data["sql"])
            resolve_in_sandbox(self.config.get("database", ""))
        except ToolError as exc:
            raise InvalidRunInput({"input": f"sql: {exc}"}) from None
        return data

    def script(self, view: PlanView) -> Plan:
        if not view.results:
            return Plan.call(
                "sql_execute", thought="Preview the statement and ask a DBA.", sql=view.input["sql"]
            )
        last = view.last
        if last["outcome"] == "executed":
            return Plan.finish(f"Changed {last['result']['rows']} rows: {view.input['sql']}")
        return Plan.finish(f"The database was not changed: {last['reason']}")
