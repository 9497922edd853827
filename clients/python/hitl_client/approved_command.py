"""`hitl exec -- COMMAND ARGS...`: run a command only as a reviewer approved it.

The command is asked for as the action `{"tool": "exec", "args": {"argv": [...]}}`, with an
`args_schema` that keeps a reviewer's edit a non-empty list of strings. Once approved, the
receipt is redeemed for exactly the argv about to run, and that argv runs: the reviewer's
edited one after a modify. It runs without a shell, so what the reviewer read is what runs.
Anything but an approval (a rejection, an expiry, a withdrawal, an error, the receipt already
spent) runs nothing.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from typing import Any

from hitl_client.errors import HitlError
from hitl_client.models import Checkpoint

TOOL = "exec"
SOURCE = "hitl-exec"
ARGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "argv": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "the command and its arguments, run as they are (no shell)",
        }
    },
    "required": ["argv"],
    "additionalProperties": False,
}
EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND = 126, 127  # as shells say it


def shown(argv: list[str]) -> str:
    """The argv as one line a shell would read back the same (control characters escaped)."""
    line = shlex.join(argv)
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in line)


def title_for(argv: list[str]) -> str:
    title = f"Run {shown(argv)}"
    return title if len(title) <= 300 else title[:299] + "…"


def approved_argv(cp: Checkpoint) -> list[str]:
    """The argv the approval allows: the reviewer's edit, or the request as asked. Anything
    that is not an approval of a non-empty list of strings is an error: nothing runs."""
    action = cp.approved_action
    if not cp.approved or not isinstance(action, dict) or action.get("tool") != TOOL:
        raise HitlError(f"checkpoint {cp.id} is not an approval of a command ({cp.status})")
    argv = (action.get("args") or {}).get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise HitlError(f"checkpoint {cp.id}: the approved argv is not a list of strings")
    return argv


def say(message: str) -> None:
    """Tell the person at the terminal (stdout is the command's)."""
    sys.stderr.write(f"hitl exec: {message}\n")
    sys.stderr.flush()


def execute(argv: list[str]) -> int:
    """Run `argv` (no shell) and return its exit status (128 + N when signal N ended it).
    While it runs, Ctrl-C and Ctrl-\\ are the command's to handle, as with system(3)."""
    try:
        proc = subprocess.Popen(argv)
    except FileNotFoundError:
        say(f"{argv[0]}: command not found")
        return EXIT_NOT_FOUND
    except OSError as exc:
        say(f"{argv[0]}: {exc.strerror or exc}")
        return EXIT_CANNOT_EXECUTE
    ignored = [sig for sig in (signal.SIGINT, getattr(signal, "SIGQUIT", None)) if sig]
    previous = [signal.signal(sig, signal.SIG_IGN) for sig in ignored]
    try:
        code = proc.wait()
    finally:
        for sig, handler in zip(ignored, previous, strict=True):
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code
