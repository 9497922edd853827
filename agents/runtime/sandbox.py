"""Where hosted agents may touch files: only under `HITL_SANDBOX_ROOTS`.

Paths are resolved (symlinks followed, `..` collapsed) before the check, so neither a
symlink inside a root nor a `../` trick reaches outside. Relative paths are taken relative to
the first root, which is what the demo inputs use (`{"path": "logs"}`).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from agents.runtime.tools import ToolError


class SandboxError(ToolError):
    """A path outside every sandbox root. Raised before any checkpoint is created."""


def roots() -> list[Path]:
    return [Path(r).resolve() for r in settings.HITL_SANDBOX_ROOTS]


def is_inside(path: Path) -> bool:
    return any(path == root or root in path.parents for root in roots())


def resolve_in_sandbox(value: str, *, must_exist: bool = True) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise SandboxError("a path is required")
    all_roots = roots()
    if not all_roots:
        raise SandboxError("no sandbox roots are configured (HITL_SANDBOX_ROOTS)")
    raw = Path(value).expanduser()
    path = (raw if raw.is_absolute() else all_roots[0] / raw).resolve()
    if not is_inside(path):
        allowed = ":".join(str(r) for r in all_roots)
        raise SandboxError(
            f"{value!r} resolves to {path}, which is outside the sandbox roots ({allowed}); "
            "set HITL_SANDBOX_ROOTS to allow it"
        )
    if must_exist and not path.exists():
        raise SandboxError(f"{path} does not exist")
    return path
