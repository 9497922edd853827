"""code-patcher: proposes a change to a git working copy as a unified diff; on approval applies
it with `git apply` and commits.

Input `{"repo": dir, "message": "...", "patch": "<unified diff>"}` or, instead of a literal
patch, `"edits": [{"path": "app/settings.py", "find": "DEBUG = True", "replace": "..."}]`
from which the diff is computed against the working copy as it is when asked. The reviewer
sees the rendered diff and may edit it; the edited patch is what gets applied. A patch that no
longer applies at approval time triggers a fresh checkpoint (recomputed from `edits`).

Exactly-once: the commit carries a `HITL-Step: <idempotency key>` trailer, so an interrupted
attempt is detected instead of committed twice.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from pathlib import Path

from agents.runtime import HostedAgent, InvalidRunInput, Plan, PlanView, Preview, tool
from agents.runtime.sandbox import SandboxError, resolve_in_sandbox
from agents.runtime.tools import StaleAction, ToolContext, ToolError
from approvals.artifacts import ArtifactInput

GIT_ENV = {
    "GIT_AUTHOR_NAME": "HITL code-patcher",
    "GIT_AUTHOR_EMAIL": "code-patcher@hitl.invalid",
    "GIT_COMMITTER_NAME": "HITL code-patcher",
    "GIT_COMMITTER_EMAIL": "code-patcher@hitl.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(repo: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **GIT_ENV},
    )
    if check and proc.returncode != 0:
        raise ToolError(f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip()[:500]}")
    return proc.stdout if check else f"{proc.returncode}\n{proc.stderr}"


def _repo(value: str) -> Path:
    repo = resolve_in_sandbox(value)
    if not (repo / ".git").exists():
        raise ToolError(f"{repo} is not a git working copy")
    return repo


def diff_for_edits(repo: Path, edits: list[dict]) -> str:
    """A unified diff (git format) for find/replace edits against the current files."""
    out = []
    for edit in edits:
        if not isinstance(edit, dict) or not {"path", "find", "replace"} <= edit.keys():
            raise ToolError("each edit must be {path, find, replace}")
        target = resolve_in_sandbox(str(repo / edit["path"]))
        if repo not in target.parents:
            raise ToolError(f"{edit['path']} is outside the repository")
        old = target.read_text()
        count = old.count(edit["find"])
        if count != 1:
            raise StaleAction(
                f"{edit['path']}: the text to replace occurs {count} times (expected once)"
            )
        new = old.replace(edit["find"], edit["replace"])
        rel = target.relative_to(repo).as_posix()
        out.append(f"diff --git a/{rel} b/{rel}\n--- a/{rel}\n+++ b/{rel}\n")
        hunks = list(difflib.unified_diff(old.splitlines(True), new.splitlines(True), n=3))[2:]
        for line in hunks:
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _check_applies(repo: Path, patch: str) -> None:
    result = git(repo, "apply", "--check", "--whitespace=nowarn", "-", stdin=patch, check=False)
    code, _, err = result.partition("\n")
    if code != "0":
        raise StaleAction(f"the patch no longer applies to {repo.name}: {err.strip()[:400]}")


def _validate(args: dict, ctx: ToolContext) -> None:
    _repo(args["repo"])
    if not args.get("message", "").strip():
        raise ToolError("a commit message is required")
    if not (args.get("patch") or "").strip() and not args.get("edits"):
        raise ToolError("give a patch (unified diff) or edits")
    if args.get("patch") and not re.search(r"^(---|\+\+\+|@@) ", args["patch"], re.M):
        raise ToolError("the patch is not a unified diff")


def _changed_files(repo: Path, patch: str) -> list[str]:
    return [
        line.split("\t")[-1]
        for line in git(repo, "apply", "--numstat", "-", stdin=patch).splitlines()
        if line.strip()
    ]


@tool(requires_approval=True, risk="high", validate=_validate)
def apply_patch(
    ctx: ToolContext,
    repo: str,
    message: str,
    patch: str = "",
    edits: list[dict] | None = None,
) -> dict:
    """Apply a unified diff to a git working copy and commit it.

    Args:
        repo: the working copy, inside a sandbox root
        message: the commit message
        patch: the change as a unified diff (git apply format)
        edits: alternatively, [{path, find, replace}] text replacements to turn into a diff
    """
    root = _repo(repo)
    if not patch:
        raise ToolError("no patch to apply")
    trailer = f"HITL-Step: {ctx.idempotency_key}"
    if ctx.recovering:
        found = git(root, "log", "--format=%H", "-F", f"--grep={trailer}", "-n", "1").strip()
        if found:  # the interrupted attempt got as far as the commit
            return {"commit": found, "files": _changed_files(root, patch), "recovered": True}
        applied = git(root, "apply", "--reverse", "--check", "-", stdin=patch, check=False)
        if applied.startswith("0\n"):  # applied but not committed: commit, don't re-apply
            files = _changed_files(root, patch)
            git(root, "add", "--", *files)
            git(root, "commit", "-q", "-m", message, "-m", trailer, "--", *files)
            return {"commit": git(root, "rev-parse", "HEAD").strip(), "files": files}
    _check_applies(root, patch)
    files = _changed_files(root, patch)
    git(root, "apply", "--whitespace=nowarn", "-", stdin=patch)
    git(root, "add", "--", *files)
    git(root, "commit", "-q", "-m", message, "-m", trailer, "--", *files)
    return {"commit": git(root, "rev-parse", "HEAD").strip(), "files": files}


@apply_patch.preview
def _preview(args: dict, ctx: ToolContext) -> Preview:
    root = _repo(args["repo"])
    patch = args.get("patch") or diff_for_edits(root, args.get("edits") or [])
    if not patch.strip():
        raise ToolError("the change is empty")
    _check_applies(root, patch)
    stats = git(root, "apply", "--stat", "-", stdin=patch).strip()
    head = git(root, "rev-parse", "--short", "HEAD").strip()
    return Preview(
        title=f"Commit to {root.name}: {args['message']}"[:300],
        summary=f"Applies this diff on top of {head} in {root} and commits it.\n\n{stats}",
        args={**args, "repo": str(root), "patch": patch},
        artifacts=[ArtifactInput(name="change.diff", kind="diff", content=patch)],
    )


@apply_patch.revalidate
def _still_applies(args: dict, ctx: ToolContext) -> None:
    _check_applies(_repo(args["repo"]), args.get("patch") or "")


@apply_patch.refresh
def _recompute(args: dict, ctx: ToolContext) -> dict:
    """Recompute the diff from the edits against the working copy as it is now; a literal
    patch without edits cannot be recomputed (the preview then reports it no longer applies)."""
    if args.get("edits"):
        return {**args, "patch": ""}
    return args


class CodePatcher(HostedAgent):
    name = "Code patcher"
    description = "Proposes a diff to a git working copy; applies and commits it on approval."
    tools = [apply_patch]
    default_task = "Read DEBUG from the environment instead of hard-coding it"
    default_input = {
        "repo": "sample-repo",
        "message": "Read DEBUG from the environment",
        "edits": [
            {
                "path": "app/settings.py",
                "find": "DEBUG = True",
                "replace": 'DEBUG = os.environ.get("DEBUG") == "1"',
            }
        ],
    }

    def clean_input(self, task: str, data: dict) -> dict:
        try:
            repo = _repo(data.get("repo", ""))
        except SandboxError as exc:
            raise InvalidRunInput({"input": f"repo: {exc}"}) from None
        except ToolError as exc:
            raise InvalidRunInput({"input": f"repo: {exc}"}) from None
        if not data.get("patch") and not data.get("edits"):
            raise InvalidRunInput({"input": "give a patch (unified diff) or edits"})
        if data.get("patch") and data.get("edits"):
            raise InvalidRunInput({"input": "give either a patch or edits, not both"})
        return {**data, "repo": str(repo), "message": data.get("message") or task}

    def script(self, view: PlanView) -> Plan:
        data = view.input
        if not view.results:
            args = {"repo": data["repo"], "message": data["message"]}
            if data.get("patch"):
                args["patch"] = data["patch"]
            else:
                args["edits"] = data["edits"]
            return Plan.call(
                "apply_patch", thought="Propose the change as a diff for review.", **args
            )
        last = view.last
        if last["outcome"] == "executed":
            r = last["result"]
            return Plan.finish(
                f"Committed {r['commit'][:12]} ({', '.join(r['files'])}): {data['message']}"
            )
        return Plan.finish(f"The repository was not changed: {last['reason']}")
