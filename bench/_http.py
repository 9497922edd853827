"""A minimal asyncio HTTP/1.1 keep-alive client: cheap enough per request that the load
generator does not steal the CPU the server under test needs (httpx costs several times more)."""

from __future__ import annotations

import asyncio
import json
import ssl as _ssl


class Connection:
    """`ssl`: a client context for HTTPS (the handshake once per connection; every request's
    encryption then costs this process CPU, on the same cores as the server's)."""

    def __init__(self, host: str, port: int, ssl: _ssl.SSLContext | None = None):
        self.host, self.port, self.ssl = host, port, ssl
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def send(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | dict | None = None,
    ) -> None:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        body = body or b""
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()

    async def receive(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        self.closing = b"\r\nconnection: close" in head.lower()
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        self.headers = headers  # the last response's, lower-cased
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = b""
        return status, body

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | dict | None = None,
    ) -> tuple[int, bytes]:
        if getattr(self, "closing", False):  # the server closes after each response (gunicorn)
            self.close()
            await self.open()
        await self.send(method, path, headers, body)
        return await self.receive()
