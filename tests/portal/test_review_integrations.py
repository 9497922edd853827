"""The review page for requests from integrations: only the allowed outcomes' buttons, named
reasons to reject, the tool's argument schema behind the edit form (field errors from the
same rule the API uses), and where the request came from."""

from __future__ import annotations

from approvals.models import Decision
from tests.portal.helpers import decide_url, review_url
from tests.receivers import HttpReceiver

SCHEMA = {
    "type": "object",
    "properties": {
        "paths": {"type": "array", "items": {"type": "string"}},
        "days": {"type": "integer"},
    },
    "required": ["paths"],
}


def test_it_shows_only_the_allowed_outcomes_and_the_source(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint(
        allowed_outcomes=["approve", "reject"],
        context={"source": "humanlayer"},
        action={"tool": "send_email", "args": {}},
    )
    page = client_for(reviewer).get(review_url(cp)).content.decode()
    assert 'data-decision="approve"' in page and 'data-decision="reject"' in page
    assert 'data-decision="modify"' not in page and 'id="edit-box"' not in page
    assert "From HumanLayer SDK." in page and "cannot run edited" in page
    assert "positional arguments" in page  # kwargs were empty: the reviewer is warned

    refused = client_for(reviewer).post(
        decide_url(cp), {"outcome": "modify", "action_args": '{"to": "x"}'}
    )
    assert refused.status_code == 400
    assert "This checkpoint allows only: approve, reject." in refused.content.decode()
    assert not Decision.objects.exists()


def test_it_rejects_with_a_named_reason(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint(
        reject_options=[{"value": "too_risky", "label": "Too risky", "prompt_fill": "risky: "}]
    )
    page = client_for(reviewer).get(review_url(cp)).content.decode()
    assert 'name="reject_option" value="too_risky"' in page
    resp = client_for(reviewer).post(
        decide_url(cp), {"outcome": "reject", "reject_option": "too_risky"}
    )
    assert resp.status_code == 302
    cp.refresh_from_db()
    assert (cp.status, cp.answer, cp.resolution_reason) == ("rejected", "too_risky", "risky:")


def test_an_edit_that_breaks_the_schema_is_a_field_error(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint(
        action={"tool": "delete_files", "args": {"paths": ["/tmp/a"]}, "args_schema": SCHEMA}
    )
    page = client_for(reviewer).get(review_url(cp)).content.decode()
    assert 'id="args-schema"' in page and "<code>days</code>" in page
    resp = client_for(reviewer).post(
        decide_url(cp),
        {"outcome": "modify", "action_args": '{"paths": "/tmp/a", "days": "7"}'},
    )
    assert resp.status_code == 400
    body = resp.content.decode()
    assert "paths: &#x27;/tmp/a&#x27; is not of type &#x27;array&#x27;" in body
    assert "days: &#x27;7&#x27; is not of type &#x27;integer&#x27;" in body
    assert not Decision.objects.exists()


def test_a_schema_that_points_outside_itself_is_never_fetched(
    client_for, reviewer, make_checkpoint
):
    """The page's edit form goes through the same rule as the API: a stored schema with a
    remote `$ref` refuses the edit with a form error; nothing is fetched."""
    receiver = HttpReceiver()
    try:
        schema = {"properties": {"paths": {"$ref": f"{receiver.base}/paths.json"}}}
        cp = make_checkpoint(
            action={"tool": "delete_files", "args": {"paths": ["/tmp/a"]}, "args_schema": schema}
        )
        resp = client_for(reviewer).post(
            decide_url(cp), {"outcome": "modify", "action_args": '{"paths": ["/tmp/b"]}'}
        )
        assert resp.status_code == 400
        assert "argument schema cannot check this edit" in resp.content.decode()
        assert receiver.requests == []
        assert not Decision.objects.exists()
    finally:
        receiver.stop()
