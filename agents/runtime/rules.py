"""Approval rules: a policy may demand a human for a call the tool itself does not flag, by
looking at its arguments (a DELETE without WHERE, more than N files). Rules can only add
review or raise risk, never remove what a tool requires."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass

from approvals.models import RISK_ORDER, Risk


@dataclass(frozen=True)
class ApprovalRule:
    tool: str  # glob on the tool name
    check: Callable[[dict], str | None]  # returns why approval is needed, or None
    risk: str | None = None  # raise the call's risk to at least this

    def applies(self, tool_name: str, args: dict) -> str | None:
        if not fnmatch.fnmatchcase(tool_name, self.tool):
            return None
        return self.check(args)


@dataclass
class Requirement:
    needed: bool
    risk: str
    reasons: list[str]


def requirement(tool, args: dict, rules: list[ApprovalRule]) -> Requirement:
    reasons = ["the tool requires approval"] if tool.requires_approval else []
    risk = tool.risk
    for rule in rules:
        why = rule.applies(tool.name, args)
        if why:
            reasons.append(why)
            if rule.risk and RISK_ORDER[rule.risk] > RISK_ORDER[risk]:
                risk = rule.risk
    return Requirement(bool(reasons), risk, reasons)


_WHERE = re.compile(r"\bwhere\b", re.IGNORECASE)
_WRITE = re.compile(r"^\s*(delete|update)\b", re.IGNORECASE)


def sql_without_where(tool: str = "sql_*", arg: str = "sql") -> ApprovalRule:
    """An UPDATE or DELETE that touches every row of its table: always a human, critical."""

    def check(args: dict) -> str | None:
        sql = str(args.get(arg) or "")
        if _WRITE.match(sql) and not _WHERE.search(sql):
            return "the statement has no WHERE clause: it changes every row"
        return None

    return ApprovalRule(tool, check, Risk.CRITICAL)


def more_than(n: int, *, tool: str, arg: str, what: str = "items") -> ApprovalRule:
    """Approval when a list argument has more than `n` entries."""

    def check(args: dict) -> str | None:
        value = args.get(arg)
        if isinstance(value, list) and len(value) > n:
            return f"more than {n} {what} ({len(value)})"
        return None

    return ApprovalRule(tool, check, Risk.HIGH)
