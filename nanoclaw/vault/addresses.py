"""Which addresses a sandbox may reach through the proxy, decided once per connection.

A name is resolved once; every address it resolves to must be public, and the
proxy then connects to exactly the address it checked (a second lookup is a
second answer: DNS rebinding). An IPv6 address that carries an IPv4 address —
IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`
and `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo `2001::/32` — is judged by the
IPv4 address inside as well, since that is where it may lead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Awaitable, Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_COMPATIBLE = ipaddress.IPv6Network("::/96")


class EgressRefused(Exception):
    """The destination is not public (or cannot be resolved): the sandbox may not reach it."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and may be translated to on the way)."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client)
    if address in _COMPATIBLE and int(address) > 1:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if any(address in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: IPAddress) -> bool:
    """Globally reachable unicast, and so is every IPv4 address inside it."""
    if not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _COMPATIBLE or any(address in net for net in _NAT64):
            return False  # deprecated or translating: never a destination of ours, whatever is inside
        return all(is_public(inner) for inner in embedded_ipv4(address))
    return True


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def checked_address(host: str, port: int, resolve: Resolver, *, allow_private: bool = False) -> str:
    """The one address to connect to for host:port, or EgressRefused with a sentence why."""
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in await resolve(host, port)]
        except (OSError, ValueError) as exc:
            raise EgressRefused(f"cannot resolve {host}") from exc
    if not addresses:
        raise EgressRefused(f"cannot resolve {host}")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise EgressRefused(f"{host} resolves to a non-public address ({address}); "
                                    "the sandbox may not reach it")
    return str(addresses[0])


def url_host(address: str) -> str:
    """An address as it stands in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address
