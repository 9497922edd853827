import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")
django_application = get_asgi_application()

# Django runs each request's sync code in its own thread. A thread that comes back from a
# database round trip waits for the GIL up to the switch interval (5 ms by default) while
# another thread computes; 0.5 ms keeps transactions (row locks) short. (This server serves
# long-poll and /mcp in production, everything in `make run`.)
GIL_SWITCH_INTERVAL = 0.0005
sys.setswitchinterval(GIL_SWITCH_INTERVAL)

# Long-poll waits are answered in the event loop, ahead of Django (api/asgi.py); /mcp is the
# MCP SDK's app (integrations/mcp.py); every body is size-checked first. This one app serves
# every path (`make run`); production routes long-poll and /mcp here and the rest to the WSGI
# server in its reverse proxy (docs/production.md).
from api.asgi import LongPollApp, RequestLimits  # noqa: E402  (needs the app registry loaded)
from integrations.mcp import McpMount  # noqa: E402

application = RequestLimits(McpMount(LongPollApp(django_application)))
