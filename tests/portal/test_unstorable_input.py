"""Edited arguments and comments no database can store: the review page refuses them with a
field error, as the API does (one validation, `approvals.rules`), never a 500."""

from __future__ import annotations

import pytest

from approvals.models import Decision
from approvals.services import user_token_create
from tests.api.conftest import Api

pytestmark = pytest.mark.django_db

BAD_ARGS = ['{"a\\u0000": 1}', '{"a": "x\\u0000y"}', '{"a": "\\ud800"}', '{"a": NaN}']


@pytest.mark.parametrize("args", BAD_ARGS)
def test_the_review_page_refuses_unstorable_edits_like_the_api_does(
    args, client_for, reviewer, make_checkpoint
):
    cp = make_checkpoint()
    c = client_for(reviewer)
    base = f"/admin/approvals/checkpoint/{cp.pk}"
    form = {"outcome": "modify", "action_args": args}
    decided = c.post(f"{base}/decide/", form)
    assert decided.status_code == 400
    assert "action_args" in decided.content.decode() or "errorlist" in decided.content.decode()
    preview = c.post(f"{base}/preview-edit/", {"action_args": args})
    assert preview.status_code == 400 and "action_args" in preview.json()["errors"]
    raw = f'{{"outcome": "modify", "action": {{"args": {args}}}}}'.encode()
    via_api = Api(user_token_create(reviewer, scope="decide")).post(
        f"checkpoints/{cp.pk}/decision/", raw=raw
    )
    assert via_api.status_code == 400
    assert not Decision.objects.exists()


def test_a_nul_in_a_comment_is_a_field_error_not_a_500(client_for, reviewer, make_checkpoint):
    cp = make_checkpoint()
    response = client_for(reviewer).post(
        f"/admin/approvals/checkpoint/{cp.pk}/decide/", {"outcome": "reject", "comment": "no\x00"}
    )
    assert response.status_code == 400 and "Null characters" in response.content.decode()
    assert not Decision.objects.exists()
