"""Real receivers on 127.0.0.1 for what the portal sends: an SMTP server (aiosmtpd) that
keeps the mail it accepts, and an HTTP server (Slack / Teams / webhook receivers, Slack's Web
API) that keeps every request. No Django: the tests and bench/notify.py use them."""

from __future__ import annotations

import email
import email.policy
import json
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def _free_port() -> int:
    """A free port on 127.0.0.1: the system's pick, or one of HITL_TEST_PORTS (e.g.
    "18100-18199") on a machine whose ports are shared out."""
    low, _, high = os.environ.get("HITL_TEST_PORTS", "").partition("-")
    candidates = (
        random.sample(range(int(low), int(high) + 1), int(high) - int(low) + 1) if high else [0]
    )
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free port in HITL_TEST_PORTS={os.environ['HITL_TEST_PORTS']}")


def _until(done, timeout: float, result):
    """What was received once `done()` holds or `timeout` ran out (the caller asserts)."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    return result


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    peer: tuple = ()  # the client's (host, port): one per SMTP connection
    received: float = field(default_factory=time.time)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 (a free port). `hold` makes it keep a client waiting for
    the answer to its DATA (as a slow server does) until `release()`: a sender killed
    meanwhile never got a "250 accepted", and that mail is dropped, as SMTP says. `port`: a
    fixed one (bench/deployed.py keeps to its range), else a free one."""

    def __init__(self, port: int = 0):
        self.mails: list[Mail] = []
        self.hold = False
        self.refuse: set[str] = set()  # recipients answered "550" (a mailbox that does not exist)
        self._released = threading.Event()
        self.waiting = threading.Event()  # a client is held
        receiver = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address in receiver.refuse:
                    return "550 5.1.1 no such mailbox"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                if receiver.hold:
                    import asyncio

                    receiver.waiting.set()
                    while not receiver._released.is_set():
                        await asyncio.sleep(0.05)
                    if session.transport is None or session.transport.is_closing():
                        return "451 the client went away"
                    # The client is still there: accepted below.
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                receiver.mails.append(
                    Mail(envelope.mail_from, list(envelope.rcpt_tos), message, tuple(session.peer))  # type: ignore[arg-type]
                )
                return "250 Message accepted for delivery"

        self.port = port or _free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.port}"

    def release(self) -> None:
        self._released.set()

    @property
    def connections(self) -> int:
        """How many SMTP connections the accepted mails came over."""
        return len({m.peer for m in self.mails})

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.recipients]

    def wait_for(self, count: int, timeout: float = 10) -> list[Mail]:
        return _until(lambda: len(self.mails) >= count, timeout, self.mails)

    def stop(self) -> None:
        self.release()
        self.controller.stop()


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    received: float = field(default_factory=time.time)

    def json(self):
        return json.loads(self.body)


class HttpReceiver:
    """An HTTP server on 127.0.0.1 (`port`, else a free one) that keeps every request (GET or
    POST). It answers the queued status codes in order (then 200) with the JSON body `replies`
    has for the path (without its query), else `reply` (e.g. Slack's {"ok": true}; bytes are
    sent as they are), else "ok"."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        reply: dict | bytes | None = None,
        replies: dict[str, dict] | None = None,
        port: int = 0,
    ):
        self.statuses = list(statuses or [])
        self.reply = reply
        self.replies = dict(replies or {})
        self.requests: list[Request] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(Request(self.path, dict(self.headers), body))
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                reply = receiver.replies.get(self.path.split("?", 1)[0], receiver.reply)
                raw = isinstance(reply, bytes)
                out = reply if raw else json.dumps(reply).encode() if reply else b"ok"
                self.send_response(code)
                json_reply = reply and not raw
                self.send_header("Content-Type", "application/json" if json_reply else "text/plain")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or _free_port()), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.url = f"{self.base}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def at(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def wait_for(self, count: int, timeout: float = 10) -> list[Request]:
        return _until(lambda: len(self.requests) >= count, timeout, self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
