"""Fronts for other clients' protocols and chat tools. They translate; the rules stay where
they are (`agents.services.ask`, `approvals.transitions`, `approvals.rules`), and
authentication, permissions and throttling are the REST API's (`api`):

- `humanlayer/`: HumanLayer's REST API (`/humanlayer/v1/`), for unchanged `humanlayer` code;
- `mcp.py`: the MCP server over streamable HTTP (`/mcp`);
- `slack/`: Slack's interactivity (decision buttons in notifications) and the account link."""
