"""The docs say what the code does: the configuration reference (docs/configuration.md) is
checked against hitlportal/settings.py both ways, and the commands in README.md and docs/ keep
working verbatim: the safe, self-contained ones are run, and for every other one the
`manage.py` command, the `make` target and the `hitl` subcommand it names must exist."""

import argparse
import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
CONFIGURATION = ROOT / "docs" / "configuration.md"
ENV_HELPERS = {"env_str", "env_bool", "env_int", "env_float", "env_list"}
SHELL_LANGS = {"sh", "bash", "console", "shell"}
NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


# --- the configuration reference ------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every environment variable settings.py reads: its env_* helpers, os.environ, os.getenv.
    Each read must name its variable literally, or this list (and the docs) could miss it."""
    tree = ast.parse((ROOT / "hitlportal" / "settings.py").read_text())
    names, dynamic = set(), []

    def literal(node: ast.AST, where: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
        else:
            dynamic.append(f"settings.py:{where.lineno}")

    def is_environ(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )

    def reads_env(func: ast.AST) -> bool:
        if isinstance(func, ast.Name):
            return func.id in ENV_HELPERS
        if not isinstance(func, ast.Attribute):
            return False
        if func.attr in {"get", "pop", "setdefault"}:
            return is_environ(func.value)
        return func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os"

    defining = {
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in ENV_HELPERS
    }
    inside_helpers = {id(n) for d in defining for n in ast.walk(d)}
    for node in ast.walk(tree):
        if id(node) in inside_helpers:  # the helpers read os.environ[name] for their callers
            continue
        if isinstance(node, ast.Call) and node.args and reads_env(node.func):
            literal(node.args[0], node)
        elif isinstance(node, ast.Subscript) and is_environ(node.value):
            literal(node.slice, node)
    assert not dynamic, f"environment variables read under a computed name: {dynamic}"
    return names


def configuration_tables() -> tuple[set[str], dict[str, list[str]]]:
    """(the names in the main table, {name: [where it is read]} of "Read outside settings")."""
    main, elsewhere, section = set(), {}, "main"
    for line in CONFIGURATION.read_text().splitlines():
        if line.startswith("## Read outside settings"):
            section = "elsewhere"
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if section == "main":
            main |= set(NAME.findall(cells[0]))
        else:
            (name,) = NAME.findall(cells[0])
            elsewhere[name] = re.findall(r"`([^`]+)`", cells[1])
    return main, elsewhere


def test_settings_reads_are_found():
    names = settings_env_names()
    # A few known ones, so that a parser that finds nothing cannot pass the tests below.
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "HITL_Q_NAME", "HITL_ENV_FILE"} <= names
    assert {"SECURE_HSTS_INCLUDE_SUBDOMAINS", "HITL_MAX_HEADER_BYTES"} <= names
    assert len(names) > 100


def test_every_variable_settings_reads_is_documented():
    main, _ = configuration_tables()
    missing = sorted(settings_env_names() - main)
    assert not missing, f"read by settings.py, not in docs/configuration.md's table: {missing}"


def test_every_documented_variable_is_read_by_settings():
    main, _ = configuration_tables()
    unread = sorted(main - settings_env_names())
    assert not unread, (
        f"in docs/configuration.md's table but not read by settings.py: {unread} (a variable "
        "read elsewhere belongs in 'Read outside settings', with where)"
    )


def test_variables_read_elsewhere_are_read_where_the_docs_say():
    main, elsewhere = configuration_tables()
    assert {"PORT", "HOST", "PROMETHEUS_MULTIPROC_DIR"} <= set(elsewhere)
    read_by_settings = settings_env_names()
    for name, places in elsewhere.items():
        assert name not in read_by_settings, f"{name} is read by settings: the main table"
        assert name not in main, f"{name} is in both tables"
        assert places, f"{name}: say where it is read"
        for place in places:
            path = ROOT / place
            assert path.exists(), f"{name}: {place} does not exist"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            assert any(name in p.read_text(errors="replace") for p in files), (
                f"{name} is not read in {place}"
            )


def test_asgi_sets_its_switch_interval_from_a_constant():
    source = (ROOT / "hitlportal" / "asgi.py").read_text()
    assert "os.environ.get(" not in source and "os.getenv(" not in source
    assert "sys.setswitchinterval(GIL_SWITCH_INTERVAL)" in source


# The packages of the portal (the client, hitl_client, reads its own HITL_URL/HITL_API_KEY).
APP_PACKAGES = [
    "hitlportal", "integrations", "api", "oversight", "notifications", "agents", "approvals",
    "audit", "core",
]  # fmt: skip
# runportal sets HITL_SITE_URL for the servers it starts, unless the operator did.
READ_BESIDE_SETTINGS = {("HITL_SITE_URL", "hitlportal/management/commands/runportal.py")}


def app_environment_reads() -> list[tuple[str, str]]:
    """(name, file) of every environment variable the portal's code reads outside settings.py:
    os.environ.get / os.getenv / os.environ[...] with a literal name (writes are not reads)."""
    reads, dynamic = [], []
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            if where == "hitlportal/settings.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                name = None
                if isinstance(node, ast.Call) and node.args:
                    func = node.func
                    environ_get = (
                        isinstance(func, ast.Attribute)
                        and func.attr == "get"
                        and ast.unparse(func.value) == "os.environ"
                    )
                    if environ_get or ast.unparse(func) == "os.getenv":
                        name = node.args[0]
                elif (
                    isinstance(node, ast.Subscript)
                    and isinstance(node.ctx, ast.Load)
                    and ast.unparse(node.value) == "os.environ"
                ):
                    name = node.slice
                if name is None:
                    continue
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    reads.append((name.value, where))
                else:
                    dynamic.append(f"{where}:{node.lineno}")
    assert not dynamic, f"environment variables read under a computed name: {dynamic}"
    return reads


def test_the_portal_reads_the_environment_only_in_settings_or_where_the_docs_say():
    """Everything else goes through settings.py's fail-loud helpers (a bad value stops the
    start-up) or is a constant; the few variables read where they act are in the second
    table, which names the file."""
    _, elsewhere = configuration_tables()
    reads = app_environment_reads()
    assert ("PORT", "hitlportal/management/commands/runportal.py") in reads  # the parser works
    wrong = []
    for name, where in reads:
        if (name, where) in READ_BESIDE_SETTINGS:
            continue
        places = elsewhere.get(name, [])
        if not any(where == p or where.startswith(p.rstrip("/") + "/") for p in places):
            wrong.append(f"{where} reads {name}")
    assert not wrong, f"not read through settings.py, nor where docs/configuration.md says: {wrong}"


# --- the commands in the docs ---------------------------------------------------------------


def shell_lines() -> list[tuple[str, str]]:
    """(file:line, command line) of every ```sh / ```bash / ```console block, continuations
    joined, comments and a console's `$ ` prompt removed."""
    found = []
    for doc in DOCS:
        lang, pending, start = None, "", 0
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            fence = re.match(r"^\s*```(\S*)", line)
            if fence:
                lang = fence.group(1) if lang is None else None
                continue
            if lang not in SHELL_LANGS:
                continue
            text = line.strip()
            if lang == "console":
                if not text.startswith("$ "):
                    continue  # output
                text = text[2:]
            if not pending:
                start = number
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            text, pending = pending + text, ""
            where = f"{doc.relative_to(ROOT)}:{start}"
            try:
                words = shlex.split(text, comments=True)
            except ValueError as error:
                raise AssertionError(f"{where}: not a shell command line: {error}") from None
            if words:
                found.append((where, text))
    return found


def simple_commands(text: str) -> list[list[str]]:
    """The simple commands of one line (split at ; && || |), leading VAR=value removed."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.commenters = "#"
    lexer.whitespace_split = True
    commands, current = [], []
    try:
        tokens = list(lexer)
    except ValueError:  # an inline code span that is not a command line (shell lines parse)
        return []
    for token in tokens:
        if token and set(token) <= set(";&|"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    out = []
    for words in commands:
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words:
            out.append(words)
    return out


def code_texts() -> list[tuple[str, str]]:
    """(file:line, text) of every shell command line and every inline `code` span."""
    texts = list(shell_lines())
    for doc in DOCS:
        lang = None
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if re.match(r"^\s*```", line):
                lang = "x" if lang is None else None
                continue
            if lang is None:
                for span in re.findall(r"`([^`]+)`", line):
                    texts.append((f"{doc.relative_to(ROOT)}:{number}", span))
    return texts


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.][A-Za-z0-9_.-]*)\s*:(?!=)", text, re.M))


def hitl_subcommands() -> dict[str, set[str]]:
    """{"exec": set(), "run": {"start", "complete"}, ...} from the CLI's own parser."""
    from hitl_client.cli import build_parser

    def choices(parser: argparse.ArgumentParser) -> dict:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices
        return {}

    return {name: set(choices(sub)) for name, sub in choices(build_parser()).items()}


def management_commands() -> set[str]:
    from django.core.management import get_commands

    return set(get_commands()) | {"help"}


def named(words: list[str], program: str) -> list[str] | None:
    """The words after `program` (make, manage.py, hitl) in a simple command, else None."""
    if not words:
        return None
    first = words[0].rsplit("/", 1)[-1]
    if program == "manage.py":
        if re.fullmatch(r"python[0-9.]*", first) and "manage.py" in words[1:2]:
            return words[2:]
        if first == "manage.py":
            return words[1:]
        return None
    return words[1:] if first == program else None


def test_the_docs_have_shell_blocks():
    lines = shell_lines()
    assert len(lines) > 50
    assert any("manage.py check" in text for _, text in lines)


def test_every_management_command_named_in_the_docs_exists():
    commands = management_commands()
    wrong = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"manage\.py\s+([a-z][a-z0-9_]*)", text):
            if match.group(1) not in commands:
                line = text.count("\n", 0, match.start()) + 1
                wrong.append(f"{doc.relative_to(ROOT)}:{line}: manage.py {match.group(1)}")
    # The management commands table names them without `manage.py`.
    table = (ROOT / "docs" / "production.md").read_text().split("## Management commands")[1]
    for row in re.findall(r"^\| `([a-z_]+)", table.split("\n## ")[0], re.M):
        if row not in commands:
            wrong.append(f"docs/production.md, management commands table: {row}")
    assert not wrong, wrong


def test_every_make_target_named_in_the_docs_exists():
    targets = makefile_targets()
    assert {"run", "test", "test-fast", "lint", "docs", "docs-build"} <= targets
    wrong, seen = [], 0
    for where, text in code_texts():
        for words in simple_commands(text):
            rest = named(words, "make")
            if rest is None:
                continue
            seen += 1
            for word in rest:
                if word.startswith("-") or "=" in word:
                    continue
                if word not in targets:
                    wrong.append(f"{where}: make {word}")
    assert seen > 5
    assert not wrong, wrong


def test_every_hitl_subcommand_named_in_the_docs_exists():
    subcommands = hitl_subcommands()
    assert {"exec", "verify", "review", "run", "hook"} <= set(subcommands)
    wrong, seen = [], 0
    for where, text in code_texts():
        for words in simple_commands(text):
            rest = named(words, "hitl")
            if rest is None:
                continue
            while rest and rest[0].startswith("-"):  # global options, e.g. --outage-timeout 60
                takes_value = rest[0] in {"--url", "--key", "--outage-timeout"}
                rest = rest[2:] if takes_value and "=" not in rest[0] else rest[1:]
            if not rest:
                continue
            seen += 1
            command, *more = rest
            if command not in subcommands:
                wrong.append(f"{where}: hitl {command}")
            elif (
                subcommands[command]
                and more
                and not more[0].startswith("-")
                and more[0] not in subcommands[command]
            ):
                wrong.append(f"{where}: hitl {command} {more[0]}")
    assert seen > 20
    assert not wrong, wrong


# The command lines that are safe and self-contained: they read nothing but the checkout and
# change nothing. Every one of them that a doc shows is run, verbatim but for the interpreter.
SAFE = [
    re.compile(r"^(\.venv/bin/)?python[0-9.]* manage\.py (help|check)$"),
    re.compile(r"^(\.venv/bin/)?python[0-9.]* manage\.py [a-z_]+ --help$"),
    re.compile(r"^hitl( [a-z-]+)* --help$"),
    re.compile(r"^hitl --version$"),
]


def runnable() -> list[tuple[str, list[str]]]:
    found = []
    for where, text in shell_lines():
        for words in simple_commands(text):
            if any(p.match(" ".join(words)) for p in SAFE):
                found.append((where, words))
    return found


def test_the_docs_show_runnable_commands():
    assert len(runnable()) >= 4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "words"), runnable(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_a_safe_command_in_the_docs_runs(where, words):
    if words[0] == "hitl":
        argv = [
            sys.executable,
            "-c",
            "import sys; from hitl_client.cli import main; sys.exit(main())",
        ]
        argv += words[1:]
    else:  # .venv/bin/python or python: this interpreter (the checkout's virtualenv)
        argv = [sys.executable, *words[1:]]
    env = {**os.environ, "DEBUG": "1", "HITL_ENV_FILE": ""}
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{where}: {' '.join(words)}\n{result.stdout}\n{result.stderr}"
