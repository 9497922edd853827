"""The audit trail, the bottom app above core: `audit.models` (AuditEvent, AuditVerb),
`audit.events` (Actor, atomic, record, snapshot, changes, verify_ledger), `audit.entry`
(the frozen bytes of a ledger leaf)."""
