from __future__ import annotations

import httpx
import pytest
from django.test import Client

from hitl_client import HitlClient
from tests.api.conftest import live_portal  # noqa: F401  (a portal process, for the CLI)


class DjangoTransport(httpx.BaseTransport):
    """httpx → the portal's Django app in this process (Django's test client: the same code
    as a live server, inside the test's transaction). The live-server test of `hitl verify`
    is in test_verify_cli.py."""

    def __init__(self) -> None:
        self.django = Client()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        skip = {"content-type", "content-length", "host"}
        response = self.django.generic(
            request.method,
            request.url.raw_path.decode(),
            data=request.read(),
            content_type=request.headers.get("content-type", ""),
            headers={k: v for k, v in request.headers.items() if k.lower() not in skip},
        )
        return httpx.Response(
            response.status_code, headers=list(response.items()), content=response.content
        )


@pytest.fixture
def api_as():
    def make(token: str) -> HitlClient:
        return HitlClient("http://testserver", token, transport=DjangoTransport(), retries=0)

    return make
