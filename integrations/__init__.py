"""Wire-compatible fronts for other clients' protocols: the HumanLayer REST API
(`/humanlayer/v1/`) and the MCP server over streamable HTTP (`/mcp`). They translate; the
rules stay where they are (`agents.services.ask`, `approvals.transitions`, `approvals.rules`),
and authentication, permissions and throttling are the REST API's (`api`)."""
