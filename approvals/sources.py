"""Where a request came from (`context.source`) and what that client does with a decision:
the review page says so next to the decision buttons, so a reviewer knows, for example,
that an edit to a HumanLayer call cannot run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    label: str
    note: str  # what the client can and cannot do with the decision


SOURCES: dict[str, Source] = {
    "humanlayer": Source(
        "HumanLayer SDK",
        "Approve runs the call with the agent's own arguments; the SDK cannot run edited "
        "arguments. A rejection's reason (or the named reason's text) is what the model reads.",
    ),
    "mcp": Source(
        "MCP client",
        "The model reads the outcome as a tool result: an edit comes back as the arguments to "
        "run, a rejection as its reason.",
    ),
    "claude-code": Source(
        "Claude Code hook",
        "Approve lets the tool call run; an edit replaces the tool's whole input; a rejection "
        "blocks it and Claude reads the reason. If nobody decides before the hook gives up, "
        "the request is withdrawn and Claude Code asks at the terminal.",
    ),
    "hitl-exec": Source(
        "hitl exec (command line)",
        "Approve runs exactly this argv on the agent's machine, without a shell; an edit runs "
        "the edited argv instead of the one asked; a rejection runs nothing.",
    ),
    "langgraph": Source(
        "LangGraph",
        "The graph resumes with the decision: an edit runs with the edited arguments (types "
        "kept), a rejection or an answer becomes the tool's message to the model.",
    ),
    "openai-agents": Source(
        "OpenAI Agents SDK",
        "The run resumes from its saved state: approve runs the tool, an edit runs it with the "
        "edited arguments (the model is told), a rejection's reason is the tool's output.",
    ),
    "pydantic-ai": Source(
        "pydantic-ai",
        "The agent continues with the deferred tool results: an edit runs with the edited "
        "arguments, a rejection's reason is sent to the model.",
    ),
}


def source_for(context: dict | None) -> tuple[str, Source] | None:
    name = (context or {}).get("source")
    if isinstance(name, str) and name in SOURCES:
        return name, SOURCES[name]
    return None
