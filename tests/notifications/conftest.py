from __future__ import annotations

import pytest

from notifications.models import RoleChannel
from tests.factories import UserFactory
from tests.receivers import HttpReceiver, SmtpReceiver


@pytest.fixture
def smtp(settings):
    """A real SMTP server on 127.0.0.1; the portal's email goes to it."""
    server = SmtpReceiver()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield server
    server.stop()


@pytest.fixture
def http(private_urls):
    """A real HTTP server on 127.0.0.1 standing in for Slack, Teams and webhook receivers
    (which the portal may reach: `private_urls`)."""
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture
def ops_team(db):
    """The ops role: two reviewers, a third who is also the requester of the runs below."""
    return {
        "rita": UserFactory(username="rita", roles=["ops"]),
        "raj": UserFactory(username="raj", roles=["ops"]),
    }


@pytest.fixture
def channel(db):
    def make(kind: str, role: str = "ops", **fields) -> RoleChannel:
        return RoleChannel.objects.create(role=role, kind=kind, **fields)

    return make
