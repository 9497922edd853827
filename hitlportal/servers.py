"""The command lines of the portal's web servers (no Django: `runportal`, the live-server
tests and the benchmarks build the same processes from here).

- WSGI (granian): the API and the pages. Django runs in a few blocking threads per worker
  process, behind granian's Rust HTTP server (measured against gunicorn and uvicorn in
  docs/benchmarks.md).
- ASGI (uvicorn, `hitlportal.asgi`): long-poll, in the event loop, and /mcp; in `make run`
  (`portal_command`) every path, with no proxy in front.

Client addresses: the servers never read `X-Forwarded-For` themselves (`--no-proxy-headers`);
the portal decides whom to believe in one place (`core.clientip`, `HITL_TRUSTED_PROXIES`).
"""

from __future__ import annotations

import sys


def uvicorn_command(host: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "hitlportal.asgi:application",
        "--host", host, "--port", str(port), "--no-access-log", "--no-proxy-headers",
        "--ws", "none", *extra,
    ]  # fmt: skip


# The largest request head (request line and headers) the server buffers: above it, a 400 and
# the connection closed mid-request. Heads over HITL_MAX_HEADER_BYTES (32 KiB) and up to this
# get a 431 from the app, read to the end so that the client reads the answer.
MAX_REQUEST_HEAD = 2 * 1024 * 1024


def portal_command(host: str, port: int, workers: int = 1, *extra: str) -> list[str]:
    """`make run`'s web server: one ASGI app for every path (`runportal`, the live-server
    tests). h11 rather than httptools: it bounds the request head (httptools buffers a head
    of any size)."""
    return uvicorn_command(
        host, port, "--workers", str(workers), "--timeout-graceful-shutdown", "5",
        "--http", "h11", "--h11-max-incomplete-event-size", str(MAX_REQUEST_HEAD), *extra,
    )  # fmt: skip


def granian_command(host: str, port: int, workers: int, *extra: str, threads: int = 4) -> list[str]:
    """The WSGI server: granian's Rust HTTP front, Django in `threads` blocking threads per
    worker process (threads overlap their database round trips; measured against gunicorn,
    uvicorn and other counts in docs/benchmarks.md)."""
    return [
        sys.executable, "-m", "granian", "--interface", "wsgi", "hitlportal.wsgi:application",
        "--host", host, "--port", str(port), "--workers", str(workers),
        "--blocking-threads", str(threads), "--no-ws", "--log-level", "warning", *extra,
    ]  # fmt: skip


def gunicorn_command(host: str, port: int, workers: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "hitlportal.wsgi:application",
        "--bind", f"{host}:{port}", "--workers", str(workers), "--worker-class", "sync",
        "--log-level", "warning", *extra,
    ]  # fmt: skip
