"""The REST API (`/api/v1/`, OpenAPI at `/api/schema/`): the platform every endpoint shares
(authentication, permissions, RFC 9457 errors, strict parsers, throttling, idempotency,
pagination, the schema) and one module per resource:

runs         runs, their completion and timeline (agents; hosted runs for people)
checkpoints  an agent asks, reads the outcome, withdraws
review       a person's queue and their decisions
artifacts    uploads and downloads
wait         long-poll for a decision (with waiters: the per-process wake-up hub, and asgi:
             the ASGI fast path that answers it without Django's request machinery)
health       liveness for load balancers

Views parse and check access; the work is done by the services and transitions of `agents`
and `approvals`."""
