"""The portal's release and the REST API version it serves, stated by GET /api/v1/health/.

`__version__` is the release, the same for hitl-portal and hitl-client (pyproject.toml reads
it; tests/test_packaging.py checks that the client's agrees). `API_VERSION` is MAJOR.MINOR: a
minor adds (endpoints, fields, optional parameters), a major removes or changes (and gets a
new path, /api/v2/). Clients check it on first contact (docs/client.md, "Versions")."""

__version__ = "0.1.0"
API_VERSION = "1.0"
