"""`hitl`: the portal from a shell, for scripts and coding agents. Prints JSON on stdout
(except `hitl review`, an interactive walk through a reviewer's queue, and `hitl exec`, whose
stdout is the command's).

    export HITL_URL=https://hitl.example.com HITL_API_KEY=hitl_a…
    hitl exec --title "Drop table users_old" --risk high -- psql -c "DROP TABLE users_old"

Exit codes of request --wait, wait and status (and of exec when it ran nothing):
    0 approved as asked, or answered      8 approved with edits (run the approved action)
    3 rejected     4 expired     5 cancelled     6 still pending (timeout)
    1 error        2 usage error          7 ledger verification failed (verify)
exec, once it ran the approved command: that command's exit code. Every other command exits 0
when it did what was asked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from hitl_client import approved_command
from hitl_client._version import __version__
from hitl_client.approved_command import say, shown
from hitl_client.client import HitlClient
from hitl_client.errors import ApiError, ConflictError, HitlError, WaitTimeout
from hitl_client.ledger import parse_head
from hitl_client.models import Checkpoint
from hitl_client.review import Reviewer, use_colour

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_FOR_STATUS = {
    "approved": 0,
    "answered": 0,
    "rejected": 3,
    "expired": 4,
    "cancelled": 5,
    "pending": 6,
}
EXIT_EDITED = 8  # approved, but not as asked: running the original would undo the edit
EXIT_INTERRUPTED = 130


def _out(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a number from 0 to 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a number from 0 to 1")
    return value


def _client(opts, *, anonymous: bool = False, **options: Any) -> HitlClient:
    if opts.outage_timeout is not None:
        options["outage_timeout"] = opts.outage_timeout
    return HitlClient(
        opts.url, opts.key, user_agent=f"hitl-cli/{__version__}", anonymous=anonymous, **options
    )


def _exit_for(cp: Checkpoint) -> int:
    if cp.approved and cp.edited:
        return EXIT_EDITED
    return EXIT_FOR_STATUS.get(cp.status, EXIT_ERROR)


def _show(cp: Checkpoint, show: str = "checkpoint") -> None:
    """Print the checkpoint, or (`show="action"`) the action as approved, edits included:
    {tool, args}, null unless it is approved."""
    if show == "action":
        action = cp.approved_action if cp.approved else None
        _out(None if action is None else {"tool": action.get("tool"), "args": action.get("args")})
    else:
        _out(cp.data)


def _finish(cp: Checkpoint, show: str = "checkpoint") -> int:
    _show(cp, show)
    return _exit_for(cp)


def _ask(client: HitlClient, opts, title: str, **fields: Any) -> Checkpoint:
    """Ask with the options `request` and `exec` share (`fields`: request_approval's)."""
    # Without --run, a one-question run: the portal completes it when the checkpoint is
    # resolved (nothing else would ever finish it).
    run = opts.run or client.start_run(opts.task or title, complete_when_resolved=True).id
    artifacts = []
    for path in opts.diff or []:
        artifacts.append(
            {
                "name": Path(path).name,
                "kind": "diff",
                "content": Path(path).read_text(errors="replace"),
            }
        )
    for path in opts.artifact or []:
        uploaded = client.upload_artifact(path)
        artifacts.append({"name": Path(path).name, "kind": "file", "ref": uploaded["ref"]})
    fields.setdefault("summary", opts.summary)
    return client.request_approval(
        title,
        risk=opts.risk,
        reasoning=opts.reason or None,
        artifacts=artifacts or None,
        expires_in=opts.expires_in,
        role_hint=opts.role_hint,
        run=run,
        confidence=opts.confidence,
        **fields,
    )


def cmd_request(opts) -> int:
    client = _client(opts)
    cp = _ask(
        client,
        opts,
        opts.title,
        kind=opts.kind,
        tool=opts.tool,
        args=opts.args if opts.args is not None else {},
        options=opts.option or None,
    )
    if not opts.wait:
        _show(cp, opts.print)
        return EXIT_OK
    return _wait(client, cp.id, opts.timeout, opts.print)


def _wait(client: HitlClient, checkpoint_id: str, timeout: float | None, show: str) -> int:
    try:
        return _finish(client.wait(checkpoint_id, timeout=timeout), show)
    except WaitTimeout as exc:
        return _finish(exc.checkpoint, show)


def cmd_wait(opts) -> int:
    return _wait(_client(opts), opts.checkpoint, opts.timeout, opts.print)


def cmd_status(opts) -> int:
    return _finish(_client(opts).get_checkpoint(opts.checkpoint), opts.print)


def cmd_exec(opts) -> int:
    """Ask to run `opts.command`, wait, redeem the receipt, run exactly what was approved."""
    argv: list[str] = opts.argv
    client = _client(opts)
    cp = _ask(
        client,
        opts,
        opts.title or approved_command.title_for(argv),
        tool=approved_command.TOOL,
        args={"argv": argv},
        args_schema=approved_command.ARGS_SCHEMA,
        summary=opts.summary or f"$ {shown(argv)}",
        context={"cwd": os.getcwd()},
        source=approved_command.SOURCE,
    )
    if cp.pending:
        say(f"waiting for a reviewer to approve: {shown(argv)}\n  {cp.review_url}")
    try:
        cp = client.wait(cp.id, timeout=opts.timeout)
    except WaitTimeout:
        return _withdraw(client, cp, "no decision within --timeout", EXIT_FOR_STATUS["pending"])
    except KeyboardInterrupt:
        return _withdraw(client, cp, "interrupted", EXIT_INTERRUPTED)
    who = cp.decided_by or "the portal"
    if not cp.approved:
        reason = f": {cp.reason}" if cp.reason else ""
        say(f"{cp.status} by {who}{reason}; nothing ran")
        return EXIT_FOR_STATUS.get(cp.status, EXIT_ERROR)
    approved = approved_command.approved_argv(cp)
    # Spent right before acting, on exactly what runs: a second `hitl exec` of the same
    # approval (or a replayed receipt) gets a 409 here and runs nothing.
    client.redeem(cp.receipt, tool=approved_command.TOOL, args={"argv": approved})
    if approved != argv:
        say(
            f"approved by {who} WITH EDITS: running the approved command, not the one asked"
            f"\n  asked:    {shown(argv)}\n  approved: {shown(approved)}"
        )
    else:
        say(f"approved by {who}; running: {shown(approved)}")
    return approved_command.execute(approved)


def _withdraw(client: HitlClient, cp: Checkpoint, why: str, code: int) -> int:
    """Give up: withdraw the request, so nobody approves what will not run."""
    try:
        client.cancel(cp.id, reason=f"hitl exec: {why}; nothing ran")
    except ConflictError:
        pass  # decided at the same moment: it is not run either
    say(f"{why}: the request is withdrawn and nothing ran")
    return code


def cmd_queue(opts) -> int:
    _out(_client(opts).queue(limit=opts.limit))
    return EXIT_OK


def cmd_decide(opts) -> int:
    result = _client(opts).decide(
        opts.checkpoint,
        opts.outcome,
        comment=opts.comment,
        args=opts.args,
        answer=opts.answer,
        action_sha256=opts.action_sha256,
    )
    _out(result)
    return EXIT_OK


def cmd_review(opts) -> int:
    reviewer = Reviewer(_client(opts), colour=use_colour(sys.stdout, opts.color))
    return reviewer.run(limit=opts.limit)


def cmd_cancel(opts) -> int:
    _out(_client(opts).cancel(opts.checkpoint, reason=opts.reason).data)
    return EXIT_OK  # withdrawn, as asked (status and wait say "cancelled" with 5)


def cmd_run_start(opts) -> int:
    client = _client(opts)
    if opts.agent:
        run = client.start_hosted_run(opts.agent, opts.task, opts.input or {})
    else:
        run = client.start_run(opts.task, external_id=opts.external_id)
    _out(run.data)
    return EXIT_OK


def cmd_run_complete(opts) -> int:
    run = _client(opts).complete_run(
        opts.run,
        status="failed" if opts.failed else "completed",
        result=opts.result,
        error=opts.error,
    )
    _out(run.data)
    return EXIT_OK


def cmd_log(opts) -> int:
    _out(_client(opts).log(opts.message, kind=opts.kind, run=opts.run))
    return EXIT_OK


def cmd_mcp(opts) -> int:
    try:
        from hitl_client.mcp import OUTAGE_TIMEOUT, RETRIES, serve_stdio
    except ImportError:
        json.dump(
            {"error": "hitl mcp needs the MCP SDK: pip install 'hitl-portal[mcp]'"}, sys.stderr
        )
        sys.stderr.write("\n")
        return EXIT_ERROR
    serve_stdio(_client(opts, retries=RETRIES, outage_timeout=OUTAGE_TIMEOUT))
    return EXIT_OK


def cmd_hook_claude_code(opts) -> int:
    from hitl_client.hooks import ERROR_BUDGET, run_hook

    def client() -> HitlClient:
        # Fail closed, and quickly: few retries, short timeouts for everything but the wait.
        return HitlClient(
            opts.url,
            opts.key,
            timeout=ERROR_BUDGET / 4,
            retries=2,
            outage_timeout=ERROR_BUDGET / 4 if opts.outage_timeout is None else opts.outage_timeout,
            user_agent=f"hitl-hook/{__version__}",
        )

    return run_hook(opts, client)


EXIT_UNVERIFIED = 7


def _trusted_head(path: str) -> dict:
    try:
        return parse_head(Path(path).read_text())
    except OSError as exc:
        raise HitlError(f"--trusted-head {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise HitlError(f"--trusted-head {path}: {exc}") from None


def cmd_verify(opts) -> int:
    trusted = _trusted_head(opts.trusted_head) if opts.trusted_head else None
    # The head, the keys and consistency proofs are public: a witness needs no account.
    client = _client(opts, anonymous=not (opts.full or opts.event))
    report = client.verify_ledger(
        opts.state,
        events=opts.event or [],
        full=opts.full,
        public_keys=opts.public_key or [],
        trusted_head=trusted,
    )
    _out(report.as_dict())
    return EXIT_OK if report.ok else EXIT_UNVERIFIED


def cmd_redeem(opts) -> int:
    _out(_client(opts).redeem(opts.receipt, tool=opts.tool, args=opts.args or {}))
    return EXIT_OK


def _asking_options(p: argparse.ArgumentParser) -> None:
    """What `request` and `exec` both send with the request."""
    p.add_argument("--summary", default="")
    p.add_argument("--risk", default="medium", choices=["low", "medium", "high", "critical"])
    p.add_argument("--reason", action="append", help="a reasoning step (repeatable)")
    p.add_argument("--diff", action="append", help="a diff file to show (repeatable)")
    p.add_argument("--artifact", action="append", help="a file to upload (repeatable)")
    p.add_argument("--expires-in", type=int, default=None, help="seconds")
    p.add_argument("--role-hint", default="")
    p.add_argument(
        "--confidence", type=_confidence, default=None, help="your confidence in it, 0 to 1"
    )
    p.add_argument("--run", help="an existing run id (default: start a new run)")
    p.add_argument("--task", help="task text of the new run (default: the title)")


def _print_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--print",
        choices=["checkpoint", "action"],
        default="checkpoint",
        help="action: print only the action as approved, edits included ({tool, args}; "
        "null unless approved)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hitl",
        description="Ask humans for approval through a HITL Portal. JSON on stdout.",
        epilog="Exit codes: 0 done (request --wait, wait, status: approved as asked, or "
        "answered), 8 approved with edits, 3 rejected, 4 expired, 5 cancelled, 6 still "
        "pending, 7 ledger verification failed, 1 error, 2 usage; exec: the command's own.",
    )
    parser.add_argument("--version", action="version", version=f"hitl {__version__}")
    parser.add_argument("--url", default=None, help="portal base URL (env HITL_URL)")
    parser.add_argument(
        "--key", default=None, help="agent API key or personal token (env HITL_API_KEY)"
    )
    parser.add_argument(
        "--outage-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a create keeps retrying while the portal or its database is down "
        "(default 120; hitl mcp and hook 10; inf: until it answers)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("request", help="ask for approval (or, --kind question, an answer)")
    p.add_argument("--title", required=True)
    p.add_argument("--tool", help="the tool/command to approve")
    p.add_argument("--args", type=_json_arg, help="its arguments as a JSON object")
    p.add_argument("--kind", default="approval", choices=["approval", "question", "review"])
    p.add_argument("--option", action="append", help="an answer choice (questions)")
    _asking_options(p)
    p.add_argument("--wait", action="store_true", help="wait for the decision")
    p.add_argument("--timeout", type=float, default=None, help="with --wait: seconds")
    _print_option(p)
    p.set_defaults(func=cmd_request)

    p = sub.add_parser(
        "exec",
        help="ask to run a command, and run it only as approved (the edited argv after a "
        "modify); exits with its exit code",
        description="Ask a reviewer to approve running COMMAND (as an argv, no shell), wait, "
        "redeem the receipt, then run exactly the approved argv: the reviewer's edit after a "
        "modify, shown on stderr. Exit: the command's own code once it ran; 3 rejected, "
        "4 expired, 5 cancelled, 6 no decision within --timeout (withdrawn), 1 error: "
        "then nothing ran.",
    )
    p.add_argument("--title", help="default: Run <the command>")
    _asking_options(p)
    p.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait (then withdraw, exit 6)"
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("wait", help="wait for a checkpoint's decision")
    p.add_argument("checkpoint")
    p.add_argument("--timeout", type=float, default=None, help="seconds (default: until decided)")
    _print_option(p)
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("status", help="show a checkpoint")
    p.add_argument("checkpoint")
    _print_option(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("cancel", help="withdraw a pending checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("queue", help="your review queue (personal token)")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_queue)

    p = sub.add_parser(
        "review",
        help="walk your queue in the terminal: approve / reject / edit / skip (personal token)",
    )
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("decide", help="decide a checkpoint (personal token)")
    p.add_argument("checkpoint")
    p.add_argument("outcome", choices=["approve", "reject", "modify", "answer"])
    p.add_argument("--comment", default="", help="required to reject: the reason")
    p.add_argument("--args", type=_json_arg, default=None, help="modify: edited args (JSON)")
    p.add_argument("--answer", default="")
    p.add_argument(
        "--action-sha256",
        default="",
        help="current_action_sha256 you reviewed: refused (409) if the action changed since",
    )
    p.set_defaults(func=cmd_decide)

    run = sub.add_parser("run", help="start or finish a run").add_subparsers(
        dest="run_command", required=True
    )
    p = run.add_parser("start")
    p.add_argument("--task", required=True)
    p.add_argument("--external-id", default="")
    p.add_argument("--agent", help="with a personal token: hosted agent slug")
    p.add_argument("--input", type=_json_arg)
    p.set_defaults(func=cmd_run_start)
    p = run.add_parser("complete")
    p.add_argument("run")
    p.add_argument("--result", type=_json_arg)
    p.add_argument("--failed", action="store_true")
    p.add_argument("--error", default="")
    p.set_defaults(func=cmd_run_complete)

    p = sub.add_parser(
        "mcp", help="serve the approval tools to an MCP host on stdin/stdout (agent key)"
    )
    p.set_defaults(func=cmd_mcp)

    hook = sub.add_parser("hook", help="agent hooks").add_subparsers(
        dest="hook_command", required=True
    )
    p = hook.add_parser(
        "claude-code",
        help="Claude Code PreToolUse / PermissionRequest hook: JSON on stdin, decision on stdout",
    )
    p.add_argument(
        "--timeout", type=float, default=540, help="seconds to wait (keep below the hook's own)"
    )
    p.add_argument("--on-timeout", choices=["ask", "deny", "defer"], default="ask")
    p.add_argument("--on-error", choices=["deny", "ask"], default="deny")
    p.add_argument("--risk", choices=["low", "medium", "high", "critical"], default="medium")
    p.set_defaults(func=cmd_hook_claude_code)

    p = sub.add_parser(
        "verify",
        help="check the portal's audit ledger: signed head, consistency with the last head "
        "this machine saw, inclusion of events",
    )
    p.add_argument("--state", help="where the last accepted head is kept (a witness file)")
    p.add_argument("--event", type=int, action="append", help="an audit event id (repeatable)")
    p.add_argument("--full", action="store_true", help="re-hash every entry (managers)")
    p.add_argument(
        "--public-key", action="append", help="trust only this base64 key (default: pinned)"
    )
    p.add_argument(
        "--trusted-head",
        help="a head published before: a JSON file, or a witness file (its last line)",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("redeem", help="spend an approval's receipt right before acting")
    p.add_argument("receipt")
    p.add_argument("--tool", required=True)
    p.add_argument("--args", type=_json_arg, default=None, help="the exact args, as JSON")
    p.set_defaults(func=cmd_redeem)

    p = sub.add_parser("log", help="add a line to a run's timeline")
    p.add_argument("run")
    p.add_argument("message")
    p.add_argument(
        "--kind", default="log", choices=["log", "step", "tool_call", "observation", "error"]
    )
    p.set_defaults(func=cmd_log)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.command == "exec":
        opts.argv = opts.argv[1:] if opts.argv[:1] == ["--"] else opts.argv
        if not opts.argv:
            parser.error("exec: the command to run goes after --")
    if getattr(opts, "hook_command", None):
        return opts.func(opts)  # a hook answers every failure itself, on stdout, exit 0
    try:
        return opts.func(opts)
    except ApiError as exc:
        json.dump(
            {"error": exc.detail, "status": exc.status, "code": exc.code, "problem": exc.problem},
            sys.stderr,
        )
        sys.stderr.write("\n")
        return EXIT_ERROR
    except (HitlError, OSError) as exc:
        json.dump({"error": str(exc)}, sys.stderr)
        sys.stderr.write("\n")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
