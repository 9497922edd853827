"""Processes on this machine, read from /proc (Linux): for the benchmarks' CPU figures."""

from __future__ import annotations

from pathlib import Path


def tree_pids(roots: list[int]) -> list[int]:
    """`roots` and every process descended from them, alive now."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out
