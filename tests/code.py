"""Where this checkout's code is, for subprocesses that set their own PYTHONPATH: the portal's
packages at the root, the client (`hitl_client`, its own distribution) in clients/python."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "python"


def pythonpath(*first: str | Path) -> str:
    """A PYTHONPATH that imports this checkout's client and portal (after `first`)."""
    return os.pathsep.join(str(p) for p in (*first, CLIENT, ROOT))
