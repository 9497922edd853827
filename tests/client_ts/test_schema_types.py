"""The TypeScript client's types are the served API's: the checked-in OpenAPI schema is what
`manage.py spectacular` (GET /api/schema/) gives now, and the checked-in types are what
openapi-typescript generates from it. Regenerate both with the commands in
docs/client-typescript.md ("When the API changes")."""

from __future__ import annotations

import subprocess

import pytest
from django.core.management import call_command

from tests.client_ts.conftest import PACKAGE

pytestmark = pytest.mark.slow

HOW = (
    "regenerate: DEBUG=1 python manage.py spectacular --file clients/typescript/openapi.yml "
    "&& (cd clients/typescript && npm run generate)"
)


def test_it_keeps_the_checked_in_schema_and_types_as_served(dev_tools, tmp_path):
    served = tmp_path / "openapi.yml"
    call_command("spectacular", "--file", str(served))
    assert served.read_text() == (PACKAGE / "openapi.yml").read_text(), HOW

    generated = tmp_path / "schema.d.ts"
    generator = PACKAGE / "node_modules" / ".bin" / "openapi-typescript"
    proc = subprocess.run(
        [str(generator), str(served), "-o", str(generated)],
        cwd=PACKAGE, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert generated.read_text() == (PACKAGE / "src" / "schema.d.ts").read_text(), HOW
