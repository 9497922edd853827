import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")

# Bodies nginx passes on are at most 51 MiB (docs/nginx/hitl-portal.conf); read past that,
# a client is not one the portal serves and its connection may be closed unread.
DRAIN_LIMIT = 64 * 1024 * 1024
_CHUNK = 256 * 1024


class ReadWholeBody:
    """WSGI: every request body is read to its end before the response goes out.

    Django answers many requests without reading their bodies (401 before the parser, a 413
    from the declared length, a CSRF 403, a 404). The WSGI server (granian) then closes the
    connection with the rest of the body unread, and the reverse proxy, still sending it,
    gets a broken pipe and answers the client 502 instead of the portal's 4xx. nginx has
    already read the whole body (docs/production.md), so reading it here is a local copy.
    The ASGI server does the same for its own refusals (api.asgi.RequestLimits)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        response = self.app(environ, start_response)
        _drain(environ)
        return response


def _drain(environ) -> None:
    stream = environ.get("wsgi.input")
    declared = environ.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if stream is None or not (chunked or (declared.isascii() and declared.isdigit())):
        return
    if not chunked and not 0 < int(declared) <= DRAIN_LIMIT:
        return
    dropped = 0
    try:
        while dropped <= DRAIN_LIMIT:
            data = stream.read(_CHUNK)
            if not data:
                return
            dropped += len(data)
    except OSError:  # the client left: nothing to answer
        return


application = ReadWholeBody(get_wsgi_application())
