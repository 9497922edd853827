"""The platform underneath the HITL domain: nothing here knows about checkpoints, agents or
reviews, and nothing here imports another app of this project (import-linter checks it).

canonical  canonical JSON and the action fingerprint
exceptions Conflict, NotAllowed, InvalidInput: what services raise and every edge maps
tokens     API tokens (`hitl_<prefix>_<secret>`): the model base and the create/revoke/
           authenticate services shared by agent keys and personal tokens
queue      enqueueing django-q2 tasks (ids only), batched on commit
outbox     the generic outbox: claim by compare-and-set, lease-guarded recording, backoff with
           jitter, give-up, resend, enqueue_due
roles      a user's groups and whether they are a manager
admin      admin mixins (managers-only pages, read-only inlines and models)
"""
