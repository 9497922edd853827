"""The dependency rule that import-linter cannot see: lower layers must not reach higher apps'
models by name either (`apps.get_model("agents", ...)`, `import_string("agents....")`).
Imports themselves are checked by `lint-imports` (pyproject.toml), which this runs too."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> the packages above it, which it may not reach by name
# The layers from the bottom up (pyproject.toml's layers contract; api, oversight and
# notifications share one layer).
_ORDER = ["core", "audit", "approvals", "agents", "api", "notifications", "oversight",
          "integrations", "hitlportal"]  # fmt: skip
ABOVE = {pkg: _ORDER[_ORDER.index(pkg) + 1 :] for pkg in ["core", "audit", "approvals", "agents"]}
ABOVE["notifications"] = ["agents", "hitlportal"]


def _calls_by_name(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            first = node.args[0]
            if name in ("get_model", "import_string") and isinstance(first, ast.Constant):
                yield node.lineno, name, str(first.value)


def _reaches_up(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for line, name, target in _calls_by_name(ast.parse(path.read_text())):
            app = target.split(".")[0]
            if app in ABOVE[package]:
                found.append(f"{path.relative_to(ROOT)}:{line}: {name}({target!r})")
    return found


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_it_keeps_lower_layers_from_reaching_higher_apps_by_name(package):
    assert _reaches_up(package) == []


def test_the_name_check_would_catch_a_violation():
    tree = ast.parse('from django.apps import apps\nEvent = apps.get_model("agents", "RunEvent")')
    assert list(_calls_by_name(tree)) == [(2, "get_model", "agents")]


def test_the_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e .[dev])")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_audit_verb_has_a_payload_type_and_a_writer_cannot_add_an_undeclared_key(db):
    from audit import events, payloads
    from audit.events import Actor
    from audit.models import AuditEvent, AuditVerb

    assert [v for v in AuditVerb.values if v not in payloads.PAYLOADS] == []
    assert payloads.STRICT  # tests/conftest.py
    with pytest.raises(ValueError, match=r"run.started declares no key \['tusk'\]"):
        events.record(
            Actor.system("test"), AuditVerb.RUN_STARTED, ("agents.run", "1"), {"tusk": "x"}
        )
    assert not AuditEvent.objects.filter(verb=AuditVerb.RUN_STARTED).exists()
