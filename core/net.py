"""Where the portal may send an HTTP request that someone else chose the address of: role
channels (Slack, Teams, webhooks), ledger witnesses and agent callback URLs. One rule, checked
when the URL is saved (a field error) and again at every send (the name is resolved, every
address it resolves to is checked, and the request goes to the address that was checked, so a
name that re-resolves to an internal host between the check and the connection, DNS
rebinding, reaches nothing):

- http or https only, with a host, and no user name or password in it;
- only public addresses: not private, loopback, link-local, unspecified, multicast, reserved
  or otherwise not globally routable (IPv4 inside IPv6 is checked as the IPv4 address), in
  any spelling the resolver accepts (`0x7f000001`, `2130706433`, `127.1`, `[::1]`).

`HITL_ALLOW_PRIVATE_URLS=1` lifts the address rule (not the others) for tests and local
development, where receivers run on 127.0.0.1.

What a receiver answers is read up to `REPLY_BYTES` only and kept as one bounded line of
text: it is stored on the delivery, where managers read it."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

from core.text import one_line

SCHEMES = ("http", "https")
REPLY_BYTES = 4096  # read at most this much of a receiver's answer
REPLY_CHARS = 500  # and keep at most this much of it, as text

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(ValueError):
    """A URL the portal does not send to; the message says why, for a field error."""


def _allow_private(allow_private: bool | None) -> bool:
    if allow_private is not None:
        return allow_private
    from django.conf import settings

    return bool(getattr(settings, "HITL_ALLOW_PRIVATE_URLS", False))


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), which is where
    a packet to it ends up."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: Address) -> str:
    """Why the portal may not connect to `address` ("" when it may)."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        why = address_refusal(inner)
        return f"{why} ({inner} inside {address})" if why else ""
    for flag, words in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_unspecified", "the unspecified address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, flag):
            return words
    return "" if address.is_global else "not a public address"


def _parse(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        raise UnsafeURL(f"Not a valid URL: {exc}.") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeURL("Only http:// and https:// URLs.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("No user name or password in the URL (user:pass@host).")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    return parts


def _default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


def _addresses(host: str, port: int, *, numeric_only: bool) -> list[Address]:
    """What `host` resolves to, as the HTTP client's own resolver would (so every numeric
    spelling counts); [] when it does not resolve (with `numeric_only`: is not numeric)."""
    flags = socket.AI_NUMERICHOST if numeric_only else 0
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
    except (socket.gaierror, UnicodeError):
        return []
    out: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in out:
            out.append(address)
    return out


def _check_addresses(host: str, addresses: list[Address]) -> None:
    for address in addresses:
        if why := address_refusal(address):
            shown = host if host == str(address) else f"{host} ({address})"
            raise UnsafeURL(
                f"{shown} is {why}: the portal sends only to public addresses "
                "(HITL_ALLOW_PRIVATE_URLS=1 allows others, for tests and local development)."
            )


def check_url(url: str, *, allow_private: bool | None = None, resolve: bool = True) -> None:
    """Refuse (UnsafeURL) a URL the portal would not send to. When the URL is saved: its
    form, a numeric host in any spelling, and (`resolve`) what its name resolves to now; a
    name that does not resolve is let through (the check at send time still applies)."""
    parts = _parse(url)
    if _allow_private(allow_private):
        return
    host, port = parts.hostname or "", _default_port(parts)
    _check_addresses(host, _addresses(host, port, numeric_only=not resolve))


def url_problem(url: str, missing: str) -> str:
    """The field error for a URL the portal would send to ("" when it is fine): `missing`
    when there is none."""
    if not (url or "").strip():
        return missing
    try:
        check_url(url)
    except UnsafeURL as exc:
        return str(exc)
    return ""


@dataclass(frozen=True)
class Reply:
    status: int
    text: str  # at most REPLY_CHARS, one line


def _reply_text(raw: bytes) -> str:
    """A receiver's answer as data: decoded leniently, control characters dropped, one
    bounded line."""
    return one_line(raw.decode("utf-8", errors="replace"), REPLY_CHARS)


def post(url: str, content: bytes, *, headers: dict[str, str], timeout: float) -> Reply:
    """One POST to `url`, to an address checked at this moment (UnsafeURL otherwise; an
    httpx error when it cannot be reached). Redirects are not followed: a receiver answers
    itself."""
    parts = _parse(url)
    host, port = parts.hostname or "", _default_port(parts)
    addresses = _addresses(host, port, numeric_only=False)
    if not addresses:
        raise UnsafeURL(f"{host} does not resolve.")
    ascii_host = host if host.isascii() else host.encode("idna").decode()
    shown_host = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    headers = {**headers, "Host": shown_host + (f":{parts.port}" if parts.port else "")}
    extensions: dict[str, str] = {}
    if not _allow_private(None):
        _check_addresses(host, addresses)
    # Connect to the address that was checked, not to the name (which could resolve again,
    # elsewhere); TLS still verifies the certificate of the name (SNI).
    pinned = addresses[0]
    literal = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    target = parts._replace(netloc=f"{literal}:{port}").geturl()
    if parts.scheme.lower() == "https":
        extensions["sni_hostname"] = ascii_host
    with (
        httpx.Client(timeout=timeout, follow_redirects=False) as http,
        http.stream("POST", target, content=content, headers=headers, extensions=extensions) as r,
    ):
        raw = b""
        for chunk in r.iter_bytes():
            raw += chunk
            if len(raw) >= REPLY_BYTES:
                break
        return Reply(r.status_code, _reply_text(raw[:REPLY_BYTES]))
