"""Built-in hosted agents, each runnable from the admin's "Start run" form, the API and
`startrun`:

    log-janitor  agents.builtin.log_janitor.LogJanitor   delete *.log files older than N days
    code-patcher agents.builtin.code_patcher.CodePatcher propose a diff to a git working copy
    sql-patcher  agents.builtin.sql_patcher.SqlPatcher   an UPDATE/DELETE with a row preview
"""

BUILTIN_AGENTS = {
    "log-janitor": "agents.builtin.log_janitor.LogJanitor",
    "code-patcher": "agents.builtin.code_patcher.CodePatcher",
    "sql-patcher": "agents.builtin.sql_patcher.SqlPatcher",
}
