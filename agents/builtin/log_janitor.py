"""log-janitor: "Delete all log files older than 7 days".

Input `{"path": dir, "older_than_days": 7}`. The checkpoint lists every affected `*.log` file
(recursively, symlinks skipped) with size and modification time, as an artifact, and the
total. Approval deletes exactly the listed files after checking each is unchanged; if any
changed meanwhile, a fresh checkpoint lists the files as they are now. Rejection deletes
nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
import time
from pathlib import Path

from agents.runtime import HostedAgent, InvalidRunInput, Plan, PlanView, Preview, tool
from agents.runtime.sandbox import SandboxError, resolve_in_sandbox
from agents.runtime.tools import StaleAction, ToolContext, ToolError
from approvals.artifacts import ArtifactInput

DAY = 86400


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def scan(root: Path, older_than_days: int, now: float | None = None) -> list[dict]:
    """Regular `*.log` files under root last modified at least N days ago, sorted by path."""
    cutoff = (now or time.time()) - older_than_days * DAY
    found = []
    for path in sorted(root.rglob("*.log")):
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
            continue  # symlinks and young files are never candidates
        found.append(
            {
                "path": str(path),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "modified": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat(
                    timespec="seconds"
                ),
            }
        )
    return found


def _validate(args: dict, ctx: ToolContext) -> None:
    root = resolve_in_sandbox(args["path"])
    if not root.is_dir():
        raise ToolError(f"{root} is not a directory")
    if args.get("older_than_days", 7) < 0:
        raise ToolError("older_than_days must be 0 or more")
    for entry in args.get("files") or []:
        if not isinstance(entry, dict) or not {"path", "size", "mtime_ns"} <= entry.keys():
            raise ToolError("each file must be {path, size, mtime_ns} as listed for approval")
        path = resolve_in_sandbox(entry["path"], must_exist=False)
        if root not in path.parents or path.suffix != ".log":
            raise ToolError(f"{entry['path']} is not a *.log file under {root}")


@tool(requires_approval=True, risk="medium", validate=_validate)
def delete_old_logs(
    ctx: ToolContext, path: str, older_than_days: int = 7, files: list[dict] | None = None
) -> dict:
    """Delete *.log files (recursively) last modified at least N days ago.

    Args:
        path: the directory to clean; must be inside a sandbox root
        older_than_days: only files not modified for this many days
        files: the exact files to delete, as listed for approval (filled in by the portal;
            leave it out)
    """
    if files is None:
        raise ToolError("no approved file list; the portal lists the files before deleting")
    deleted, missing = [], []
    for entry in files:
        try:
            Path(entry["path"]).unlink()
            deleted.append(entry)
        except FileNotFoundError:
            # Re-validated a moment ago, so either an interrupted attempt of this very step
            # deleted it (recovering) or someone removed it meanwhile: either way it is gone
            # and nothing else is touched.
            (deleted if ctx.recovering else missing).append(entry)
    return {
        "deleted": len(deleted),
        "bytes": sum(e["size"] for e in deleted),
        "files": [e["path"] for e in deleted],
        "missing": [e["path"] for e in missing],
    }


@delete_old_logs.preview
def _preview(args: dict, ctx: ToolContext) -> Preview:
    root = resolve_in_sandbox(args["path"])
    days = args.get("older_than_days", 7)
    files = args.get("files")
    if files is None:
        files = scan(root, days)
    if not files:
        raise ToolError(f"no *.log files older than {days} days under {root}: nothing to delete")
    total = sum(f["size"] for f in files)
    lines = [f"{'size':>12}  {'modified (UTC)':<25}  path"]
    lines += [f"{f['size']:>12}  {f.get('modified', ''):<25}  {f['path']}" for f in files]
    lines.append(f"{total:>12}  total ({len(files)} files, {human_bytes(total)})")
    return Preview(
        title=f"Delete {len(files)} log files ({human_bytes(total)}) older than {days} days "
        f"in {root}",
        summary=f"{len(files)} *.log files under {root} were last modified {days} or more days "
        f"ago; together {human_bytes(total)}. Approving deletes exactly these files.",
        args={"path": str(root), "older_than_days": days, "files": files},
        artifacts=[
            ArtifactInput(name="files.txt", kind="log", content="\n".join(lines) + "\n"),
            ArtifactInput(
                name="files.json",
                kind="json",
                content=json.dumps({"files": files, "total_bytes": total}, indent=2),
            ),
        ],
    )


@delete_old_logs.revalidate
def _still_same(args: dict, ctx: ToolContext) -> None:
    changed = []
    for entry in args.get("files") or []:
        try:
            st = Path(entry["path"]).lstat()
        except FileNotFoundError:
            changed.append(f"{entry['path']} is gone")
            continue
        if not stat.S_ISREG(st.st_mode):
            changed.append(f"{entry['path']} is no longer a regular file")
        elif st.st_size != entry["size"] or st.st_mtime_ns != entry["mtime_ns"]:
            changed.append(f"{entry['path']} changed since it was listed")
    if changed:
        raise StaleAction("; ".join(changed))


@delete_old_logs.refresh
def _rescan(args: dict, ctx: ToolContext) -> dict:
    return {"path": args["path"], "older_than_days": args.get("older_than_days", 7)}


class LogJanitor(HostedAgent):
    name = "Log janitor"
    description = "Deletes *.log files older than N days under a sandboxed directory."
    tools = [delete_old_logs]
    default_task = "Delete all log files older than 7 days"
    default_input = {"path": "logs", "older_than_days": 7}

    def clean_input(self, task: str, data: dict) -> dict:
        days = data.get("older_than_days", 7)
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise InvalidRunInput({"input": "older_than_days must be a whole number ≥ 0"})
        try:
            root = resolve_in_sandbox(data.get("path", ""))
        except SandboxError as exc:
            raise InvalidRunInput({"input": f"path: {exc}"}) from None
        if not root.is_dir():
            raise InvalidRunInput({"input": f"path: {root} is not a directory"})
        return {**data, "path": str(root), "older_than_days": days}

    def script(self, view: PlanView) -> Plan:
        if not view.results:
            return Plan.call(
                "delete_old_logs",
                thought=f"List *.log files under {view.input['path']} older than "
                f"{view.input['older_than_days']} days and ask before deleting them.",
                path=view.input["path"],
                older_than_days=view.input["older_than_days"],
            )
        last = view.last
        if last["outcome"] == "executed":
            r = last["result"]
            return Plan.finish(
                f"Deleted {r['deleted']} log files ({human_bytes(r['bytes'])}) under "
                f"{view.input['path']}."
            )
        return Plan.finish(f"Deleted nothing: {last['reason']}")
