"""`hitl review`: a reviewer walks their queue in the terminal. For each request: a formatted
summary, the proposed action and its diffs (coloured when the terminal allows), then

    Approve? [y]es / [n]o (reject) / [e]dit / [s]kip / [q]uit

Reject asks for the reason (required); edit opens $VISUAL / $EDITOR on the arguments as
JSON, checks what comes back (JSON, an object, changed) and shows the diff before sending.
Every decision is the portal's decision endpoint with the version of the action shown
(`action_sha256`), so the same rules hold as on the review page."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from typing import Any, TextIO

from hitl_client.client import HitlClient
from hitl_client.errors import ApiError

RESET, BOLD, DIM = "\033[0m", "\033[1m", "\033[2m"
RED, GREEN, YELLOW, CYAN, MAGENTA = "\033[31m", "\033[32m", "\033[33m", "\033[36m", "\033[35m"
RISK_COLOUR = {"low": GREEN, "medium": YELLOW, "high": MAGENTA, "critical": RED}


def use_colour(stream: TextIO, mode: str = "auto") -> bool:
    if mode in ("always", "never"):
        return mode == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class _Quit(Exception):
    """The reviewer ended the input (Ctrl-D) or interrupted (Ctrl-C) at a prompt."""


class Reviewer:
    def __init__(
        self,
        client: HitlClient,
        *,
        out: TextIO = sys.stdout,
        ask: Callable[[str], str] = input,
        colour: bool = False,
        editor: str | None = None,
    ):
        self.client, self.out, self.ask, self.colour = client, out, ask, colour
        self.editor = editor or os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        self.counts = {"approved": 0, "rejected": 0, "edited": 0, "answered": 0, "skipped": 0}

    # --- output ---------------------------------------------------------------------------

    def c(self, text: str, *codes: str) -> str:
        return f"{''.join(codes)}{text}{RESET}" if self.colour and codes else text

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def diff_lines(self, text: str) -> list[str]:
        out = []
        for line in text.splitlines():
            if line.startswith(("+++", "---")):
                out.append(self.c(line, BOLD))
            elif line.startswith("+"):
                out.append(self.c(line, GREEN))
            elif line.startswith("-"):
                out.append(self.c(line, RED))
            elif line.startswith("@@"):
                out.append(self.c(line, CYAN))
            else:
                out.append(line)
        return out

    def show(self, cp: dict, position: str) -> None:
        risk = cp.get("risk", "medium")
        routed = cp.get("routed_to") or {}
        left = _time_left(cp.get("deadline"))
        kind = {"approval": "Approval", "question": "Question", "review": "Review"}.get(
            cp.get("kind"), cp.get("kind", "")
        )
        head = f" {position} · {kind} · {risk.upper()} risk · {routed.get('current_role', '')} "
        self.say(self.c(f"━━{head}" + "━" * max(0, 72 - len(head)), BOLD))
        self.say(self.c(cp.get("title", ""), BOLD))
        facts = f"agent {cp.get('agent')} · deadline {left}"
        if routed.get("approvals_needed", 1) > 1:
            facts += (
                f" · stage {routed.get('stage', 0) + 1}, {routed['approvals_needed']} approvals"
            )
        self.say(self.c(facts, DIM))
        self.say(self.c(f"risk: {risk}", RISK_COLOUR.get(risk, "")))
        if cp.get("summary"):
            self.say()
            self.say(textwrap.fill(cp["summary"], 88))
        context = cp.get("context") or {}
        if context.get("request"):
            self.say(f"\nRequest: {context['request']}")
        reasoning = context.get("reasoning") or []
        if isinstance(reasoning, str):
            reasoning = [reasoning]
        for i, step in enumerate(reasoning, 1):
            self.say(f"  {i}. {step}")
        action = cp.get("current_action") or cp.get("action") or {}
        if action.get("tool"):
            self.say(f"\nProposed action: {self.c(action['tool'], BOLD)}")
            self.say(json.dumps(action.get("args", {}), indent=2, ensure_ascii=False))
        if cp.get("options"):
            labels = [
                o.get("label", o.get("value")) if isinstance(o, dict) else o for o in cp["options"]
            ]
            self.say(f"\nOptions: {', '.join(map(str, labels))}")
        for artifact in cp.get("artifacts") or []:
            self.say(
                f"\n{self.c(artifact['name'], BOLD)} ({artifact['kind']}, {artifact['size']} bytes)"
            )
            content = artifact.get("content")
            if content is None:
                self.say(f"  {artifact.get('content_url')}")
            elif artifact["kind"] == "diff":
                self.say("\n".join(self.diff_lines(content)))
            else:
                self.say(textwrap.indent(content[:4000], "  "))
        self.say(self.c(f"\n{cp.get('review_url', '')}", DIM))

    # --- the loop -------------------------------------------------------------------------

    def prompt(self, question: str) -> str:
        """The reviewer's answer; the end of input or Ctrl-C at any prompt stops the walk
        (nothing half-typed is sent)."""
        try:
            return self.ask(question).strip()
        except (EOFError, KeyboardInterrupt):
            raise _Quit from None

    def required(self, question: str, missing: str) -> str:
        while not (text := self.prompt(question)):
            self.say(missing)
        return text

    def run(self, limit: int = 50) -> int:
        items = self.client.queue(limit=limit)
        if not items:
            self.say("Your queue is empty.")
            return 0
        for n, item in enumerate(items, 1):
            try:
                cp = self.client.get_checkpoint(item["id"]).data
            except ApiError as exc:
                self.say(f"{item.get('title')}: {exc.detail}")
                continue
            if cp.get("status") != "pending":
                continue
            self.say()
            self.show(cp, f"{n}/{len(items)}")
            try:
                if self.review_one(cp) == "quit":
                    break
            except _Quit:
                self.say()
                break
        self.say(
            "\nDone: "
            + ", ".join(f"{count} {what}" for what, count in self.counts.items() if count)
            if any(self.counts.values())
            else "\nDone: nothing decided."
        )
        return 0

    def review_one(self, cp: dict) -> str:
        question = cp.get("kind") == "question"
        choices = (
            "Answer? [a]nswer / [n]o (reject) / [s]kip / [q]uit: "
            if question
            else "Approve? [y]es / [n]o (reject) / [e]dit / [s]kip / [q]uit: "
        )
        while True:
            choice = self.prompt(choices).lower()[:1]
            if choice == "q":
                return "quit"
            if choice == "s":
                self.counts["skipped"] += 1
                return "next"
            if choice == "y" and not question:
                done = self.send(cp, "approve")
            elif choice == "a" and question:
                answer = self.required("Answer: ", "An answer cannot be empty.")
                done = self.send(cp, "answer", answer=answer)
            elif choice == "n":
                reason = self.required(
                    "Reason (required, the agent gets it): ", "A rejection needs a reason."
                )
                done = self.send(cp, "reject", comment=reason)
            elif choice == "e" and not question:
                done = self.edit(cp)
            else:
                self.say("Please answer with one of the letters in brackets.")
                continue
            if done is not None:
                return "next"

    def edit(self, cp: dict) -> bool | None:
        """$EDITOR on the arguments; None when the reviewer backs out (back to the prompt)."""
        action = cp.get("current_action") or cp.get("action") or {}
        before = action.get("args") or {}
        text = json.dumps(before, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        while True:
            text = self.run_editor(text)
            try:
                after = json.loads(text)
                if not isinstance(after, dict):
                    raise ValueError("the arguments must be a JSON object")
            except ValueError as exc:
                self.say(self.c(f"Not valid: {exc}", RED))
                if self.prompt("[r]e-edit / [c]ancel: ").lower()[:1] == "r":
                    continue
                return None
            if after == before:
                self.say("Nothing changed.")
                return None
            old = json.dumps(before, indent=2, ensure_ascii=False, sort_keys=True).splitlines()
            new = json.dumps(after, indent=2, ensure_ascii=False, sort_keys=True).splitlines()
            patch = difflib.unified_diff(old, new, "proposed", "edited", lineterm="")
            self.say("\n".join(self.diff_lines("\n".join(patch))))
            answer = self.prompt("Approve with these edits? [y]es / [r]e-edit / [c]ancel: ")
            if answer.lower()[:1] == "y":
                comment = self.prompt("Comment (optional): ")
                return self.send(cp, "modify", args=after, comment=comment)
            if answer.lower()[:1] != "r":
                return None

    def run_editor(self, text: str) -> str:
        with tempfile.NamedTemporaryFile("w+", suffix=".json", delete=False) as f:
            f.write(text)
            path = f.name
        try:
            subprocess.run([*shlex.split(self.editor), path], check=False)
            with open(path) as f:
                return f.read()
        finally:
            os.unlink(path)

    def send(self, cp: dict, outcome: str, **fields: Any) -> bool:
        try:
            result = self.client.decide(
                cp["id"], outcome, action_sha256=cp.get("current_action_sha256", ""), **fields
            )
        except ApiError as exc:
            self.say(self.c(f"Not recorded ({exc.status}): {exc.detail}", RED))
            if exc.code == "step_up_required":
                self.say(f"Decide it on the review page: {cp.get('review_url')}")
            return False
        status = result["checkpoint"]["status"]
        if result.get("resolved"):
            self.say(self.c(f"→ {status}", GREEN if status in ("approved", "answered") else RED))
        elif result.get("stage_advanced"):
            self.say(
                f"→ on to the next stage ({result['checkpoint']['routed_to']['current_role']})"
            )
        else:
            self.say("→ your vote is recorded; more approvals needed")
        key = {
            "approve": "approved",
            "reject": "rejected",
            "modify": "edited",
            "answer": "answered",
        }
        self.counts[key[outcome]] += 1
        return True


def _time_left(deadline: str | None) -> str:
    if not deadline:
        return "—"
    when = dt.datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    seconds = int((when - dt.datetime.now(dt.UTC)).total_seconds())
    if seconds <= 0:
        return "passed"
    if seconds < 3600:
        return f"in {max(seconds // 60, 1)} min"
    return f"in {seconds // 3600} h {seconds % 3600 // 60:02d} min"
