"""The audit explorer's sentences: one describer per verb, registered by verb."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from audit.models import AuditEvent, AuditVerb
from oversight.describe import DESCRIBERS, Lookup, _sentence, describes


def test_every_audit_verb_has_a_describer():
    missing = [v.value for v in AuditVerb if v.value not in DESCRIBERS]
    assert missing == []


def test_a_verb_cannot_be_described_twice():
    with pytest.raises(ImproperlyConfigured, match="described twice"):
        describes(AuditVerb.CHECKPOINT_VIEWED)(lambda *a: "")


@pytest.mark.parametrize("verb", list(AuditVerb))
def test_every_verb_reads_as_a_sentence_even_with_no_data(verb):
    # An event written before its payload gained a key (or with none) still reads.
    event = AuditEvent(verb=verb, actor_label="rita", target_type="", target_id="", data={})
    text, detail, diff = _sentence(event, Lookup([event]))
    assert str(text).strip() and isinstance(detail, str) and isinstance(diff, str)
