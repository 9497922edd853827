"""A hosted run's final report: what was done, what was not, and why."""

from __future__ import annotations


def build_report(state: dict, summary: str) -> dict:
    done, not_done, answers = [], [], []
    for entry in state.get("log", []):
        item = {"tool": entry["tool"], "args": entry["args"], "checkpoint": entry["checkpoint"]}
        if entry["outcome"] == "executed":
            done.append({**item, "result": entry["result"], "approved_by": entry["approved_by"]})
        elif entry["outcome"] == "answered":
            answers.append({**item, "answer": (entry["result"] or {}).get("answer")})
        else:
            not_done.append({**item, "outcome": entry["outcome"], "why": entry["reason"]})
    return {
        "summary": summary,
        "done": done,
        "not_done": not_done,
        "answers": answers,
        "steps": state.get("step", 0),
    }
