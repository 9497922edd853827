"""Whose request is this: the one place that decides which client address to believe.

The peer address (`REMOTE_ADDR`) is the client, unless the peer is one of the reverse proxies
named in `HITL_TRUSTED_PROXIES`: then the client is the right-most address in
`X-Forwarded-For` that is not a trusted proxy (each proxy appends the address it saw, so
everything left of that was written by the client and proves nothing). The web servers never
rewrite the peer address themselves (uvicorn runs with `--no-proxy-headers`), so login rate
limits, the anonymous API rate limit and the /metrics allow-list all see the same address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks; ValueError names a bad one (settings fail loudly)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_ip(meta: Mapping[str, str], trusted: tuple[Network, ...] | None = None) -> str:
    """The client's address as text ("" if the peer address is missing or not an address)."""
    if trusted is None:
        trusted = settings.HITL_TRUSTED_PROXIES
    peer = _address(meta.get("REMOTE_ADDR", ""))
    if peer is None:
        return ""
    if not any(peer in network for network in trusted):
        return str(peer)
    client = peer
    for hop in reversed(meta.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _address(hop)
        if address is None:  # garbage from the client: stop at the last address we trust
            break
        client = address
        if not any(address in network for network in trusted):
            break
    return str(client)
