import os
import sys

from django.core.asgi import get_asgi_application

# Django runs each request's sync code in its own thread. A thread that comes back from a
# database round trip waits for the GIL up to the switch interval (5 ms by default) while
# another thread computes; inside a transaction that holds the audit-chain lock, those waits
# add up and serialize every writer behind them. 0.5 ms keeps lock hold times short.
sys.setswitchinterval(float(os.environ.get("HITL_GIL_SWITCH_INTERVAL", "0.0005")))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")
django_application = get_asgi_application()

# Long-poll waits are answered in the event loop, ahead of Django (api/asgi.py); /mcp is the
# MCP SDK's app (integrations/mcp.py).
from api.asgi import LongPollApp  # noqa: E402  (needs the app registry loaded)
from integrations.mcp import McpMount  # noqa: E402

application = McpMount(LongPollApp(django_application))
