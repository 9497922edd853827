"""The agent-facing REST API (runs, checkpoints, artifacts, long-poll) and the API plumbing the
human-facing endpoints share: authentication, errors, parsers, throttling, idempotency."""
