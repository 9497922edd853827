"""Server-side rendering of what reviewers read: diffs, logs, files, JSON, markdown, images.
Every output is escaped or sanitized here; templates insert it as-is."""
