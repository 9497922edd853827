"""The policy engine: what happens to a request, and every change to a policy.

    routing      route a request through the published versions (`route`, `RoutingTable`)
    conditions   the CEL conditions, compiled and bounded in cost (`cel_cost`)
    validation   what a policy must be to be saved (`validate_policy`)
    changes      versions: save, publish, roll back, revoke, audited; who may (four-eyes)
    standing     standing rules proposed from a review page
    replay       a version run against history, as a background task
    pages        the policy pages of the admin

The models are `approvals.models.policies`. The engine's functions are importable from here.
"""

from approvals.policies.changes import (
    AS_PASSED,
    audited_fields,
    authors,
    check_may_publish,
    check_may_replay,
    check_may_revoke,
    four_eyes_blocks,
    latest_version,
    live_number,
    may_manage,
    may_replay,
    policy_deleted,
    policy_publish,
    policy_record,
    policy_revoke,
    policy_rollback,
    policy_save,
    policy_values,
)
from approvals.policies.routing import (
    GLOB_CHARACTERS,
    Entry,
    Route,
    RoutingTable,
    add_role_hint,
    live_versions,
    route,
    route_for,
    routing_table,
    shadow_record,
    table_changed,
    within_authority,
)
from approvals.policies.standing import standing_rule_condition, standing_rule_propose
from approvals.policies.validation import MAX_LADDER_STEPS, escalation_ladder, validate_policy

__all__ = [
    "AS_PASSED",
    "GLOB_CHARACTERS",
    "MAX_LADDER_STEPS",
    "Entry",
    "Route",
    "RoutingTable",
    "add_role_hint",
    "audited_fields",
    "authors",
    "check_may_publish",
    "check_may_replay",
    "check_may_revoke",
    "escalation_ladder",
    "four_eyes_blocks",
    "latest_version",
    "live_number",
    "live_versions",
    "may_manage",
    "may_replay",
    "policy_deleted",
    "policy_publish",
    "policy_record",
    "policy_revoke",
    "policy_rollback",
    "policy_save",
    "policy_values",
    "route",
    "route_for",
    "routing_table",
    "shadow_record",
    "standing_rule_condition",
    "standing_rule_propose",
    "table_changed",
    "validate_policy",
    "within_authority",
]
