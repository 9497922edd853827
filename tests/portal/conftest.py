from __future__ import annotations

import pytest
from django.test import Client

from approvals.artifacts import ArtifactInput
from approvals.models import Checkpoint
from tests.factories import PolicyFactory, UserFactory

DIFF = """\
diff --git a/app/settings.py b/app/settings.py
--- a/app/settings.py
+++ b/app/settings.py
@@ -1,4 +1,4 @@
 import os
-DEBUG = True
+DEBUG = os.environ.get("DEBUG") == "1"
 ALLOWED_HOSTS = ["*"]
 TIME_ZONE = "UTC"
"""


@pytest.fixture
def client_for(db):
    """A browser-like client logged in as `user` (session + CSRF cookie, like a real login)."""

    def make(user) -> Client:
        c = Client(HTTP_HOST="127.0.0.1")
        c.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return c

    return make


@pytest.fixture
def dba_policy(db):
    return PolicyFactory(
        name="sql needs dba",
        match_tool="sql_*",
        priority=1,
        stages=[{"role": "dba", "approvals": 1}],
    )


@pytest.fixture
def ops_cp(make_checkpoint):
    return make_checkpoint(
        title="Delete 3 old logs",
        summary="Frees 2 GB",
        context={
            "request": "Clean up the log directory",
            "reasoning": ["Found 3 old files", "They are > 7 days"],
        },
        artifacts=[ArtifactInput(name="settings.diff", kind="diff", content=DIFF)],
    )


@pytest.fixture
def dba_cp(make_checkpoint, dba_policy):
    return make_checkpoint(
        title="Void old orders",
        action={"tool": "sql_execute", "args": {"sql": "UPDATE orders SET status='void'"}},
        artifacts=[ArtifactInput(name="preview.log", kind="log", content="3 rows\n")],
    )


@pytest.fixture
def review_cp(make_checkpoint):
    return make_checkpoint(
        title="Review the reply",
        kind=Checkpoint.Kind.REVIEW,
        action={"tool": "send_email", "args": {"to": "ana@example.com", "body": "artifact"}},
        artifacts=[
            ArtifactInput(
                name="reply.md",
                kind="markdown",
                content="Hello Ana,\n\nWe refunded **one** charge.\n",
            )
        ],
    )


@pytest.fixture
def requester(db):
    return UserFactory(username="quinn", roles=["ops"])
