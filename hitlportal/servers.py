"""The command lines of the portal's web servers (no Django: `runportal`, the live-server
tests and the benchmarks build the same processes from here).

- WSGI (granian): the API and the pages. Django runs in a few blocking threads per worker
  process, behind granian's Rust HTTP server (measured against gunicorn and uvicorn in
  docs/benchmarks.md).
- ASGI (uvicorn, `hitlportal.asgi`): long-poll, in the event loop.
"""

from __future__ import annotations

import sys


def uvicorn_command(host: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "hitlportal.asgi:application",
        "--host", host, "--port", str(port), "--no-access-log", *extra,
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
