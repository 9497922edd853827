from tests.api.conftest import (  # noqa: F401  (fixtures shared with the API tests)
    agent_key,
    live_portal,
    reviewer_api,
)
