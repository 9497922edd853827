"""django-q2 tasks of the oversight pages (they take ids and are safe to run twice)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from audit import events as audit
from audit.events import Actor, AuditVerb


def verify_audit_chain(user_id: int) -> dict:
    """ "Verify now": walk the whole chain and record the result as an audit event by the
    manager who asked (so the explorer shows it, and who checked when is itself on record)."""
    user = get_user_model().objects.get(pk=user_id)
    result = audit.verify_ledger()
    data = {
        "ok": result.ok,
        "checked": result.checked,
        "bad_seq": result.bad_seq,
        "problem": result.problem,
    }
    with audit.atomic():
        audit.record(Actor.for_user(user), AuditVerb.AUDIT_VERIFIED, user, data)
    return data
