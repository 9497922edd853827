"""Manager oversight: the pages under /admin/oversight/ (dashboard, reviewers, drills, the
audit explorer, checkpoint timelines), the evidence exports and the evidence pack.

It reads through `approvals.metrics` (the definitions), `approvals.selectors` and
`agents` (runs, drills); it writes only through services (`agents.drills`) and the audit
trail (each export, each verification). Managers and superusers only: everyone else gets 404.
"""
