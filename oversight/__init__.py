"""Manager oversight: the pages under /admin/oversight/ (dashboard, reviewers, drills, the
audit explorer, checkpoint timelines), the evidence exports and the evidence pack.

It owns the drills and the rollups (`oversight.models`), reads through `approvals.durations`
(the definitions), `oversight.analytics`, `approvals.selectors` and
`agents` (runs); it writes only through services (`oversight.drills`) and the audit
trail (each export, each verification). Managers and superusers only: everyone else gets 404.
"""
