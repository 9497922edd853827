import os
import sys

from django.core.asgi import get_asgi_application

# Django runs each request's sync code in its own thread. A thread that comes back from a
# database round trip waits for the GIL up to the switch interval (5 ms by default) while
# another thread computes; 0.5 ms keeps transactions (row locks) short. (This server serves
# long-poll; the WSGI server, one thread per worker, serves the rest.)
sys.setswitchinterval(float(os.environ.get("HITL_GIL_SWITCH_INTERVAL", "0.0005")))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")
django_application = get_asgi_application()

# Long-poll waits are answered in the event loop, ahead of Django (api/asgi.py); /mcp is the
# MCP SDK's app (integrations/mcp.py).
from api.asgi import LongPollApp  # noqa: E402  (needs the app registry loaded)
from integrations.mcp import McpMount  # noqa: E402

# HITL_WSGI_UPSTREAM (set by `runportal`): forward everything but long-poll to that WSGI
# server; unset (production behind a path-routing proxy): Django's ASGI handler serves it.
application = McpMount(LongPollApp(django_application, os.environ.get("HITL_WSGI_UPSTREAM", "")))
