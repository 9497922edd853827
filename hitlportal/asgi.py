import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")
django_application = get_asgi_application()

# Long-poll waits are answered in the event loop, ahead of Django (agents/api/asgi.py).
from agents.api.asgi import LongPollApp  # noqa: E402  (needs the app registry loaded)

application = LongPollApp(django_application)
