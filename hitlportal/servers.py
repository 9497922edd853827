"""The command lines of the portal's web servers (no Django: `runportal`, the live-server
tests and the benchmarks build the same processes from here).

- WSGI (granian): the API and the pages. Django runs in a few blocking threads per worker
  process, behind granian's Rust HTTP server (measured against gunicorn and uvicorn in
  docs/benchmarks.md).
- ASGI (`hitlportal.asgi`): long-poll, in the event loop, and /mcp, by uvicorn behind nginx
  in production; in `make run` (`portal_command`, granian's ASGI interface) every path, with
  no proxy in front.

Client addresses: the servers never read `X-Forwarded-For` themselves (uvicorn runs with
`--no-proxy-headers`; granian reads none);
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


def portal_command(host: str, port: int, workers: int = 1, *extra: str) -> list[str]:
    """`make run`'s web server: one ASGI app for every path (`runportal`, the live-server
    tests), served by granian's Rust HTTP/1 front: request heads are bounded (431 above its
    buffer), read within a timeout, and parsed outside Python, so no client holds the event
    loop or a connection slot with a slow or huge head (uvicorn's h11 did both; httptools
    bounds no head at all)."""
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "hitlportal.asgi:application",
        "--host", host, "--port", str(port), "--workers", str(workers), "--no-ws",
        "--http1-header-read-timeout", "30000", "--workers-kill-timeout", "5",
        # Requests in flight per worker, connections waiting on a long-poll included: the
        # default (1024) let 1,100 idle connections stop it answering anyone.
        "--backpressure", "10000",
        "--log-level", "warning", *extra,
    ]  # fmt: skip


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
