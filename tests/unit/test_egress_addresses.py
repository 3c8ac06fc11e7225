"""Which addresses the proxy lets a sandbox reach, and that it connects where it checked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from nanoclaw.vault.addresses import EgressRefused, checked_address, embedded_ipv4, is_public


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
    "::1", "::", "fe80::1", "fc00::1",
    "::127.0.0.1",  # IPv4-compatible
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",  # IPv4-mapped
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::a00:1",  # NAT64, well-known and local-use
    "2002:7f00:1::1", "2002:a00:1::",  # 6to4 of loopback and 10/8
    "2001:0:7f00:1::",  # Teredo with a loopback server
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose (inverted) client is 127.0.0.1
])
def test_addresses_that_lead_inside_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2606:4700:4700::1111",
                                     "2002:808:808::1"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_the_ipv4_inside_each_kind_of_ipv6_address() -> None:
    four = ipaddress.IPv4Address("127.0.0.1")
    for six in ("::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"):
        assert four in embedded_ipv4(ipaddress.IPv6Address(six)), six
    assert four in embedded_ipv4(ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:80ff:fffe"))  # Teredo client


async def test_a_name_is_resolved_once_and_every_answer_must_be_public() -> None:
    answers = [["8.8.8.8"], ["127.0.0.1"]]
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:  # a DNS server that changes its answer
        calls.append(host)
        return answers[min(len(calls) - 1, 1)]

    assert await checked_address("rebind.example", 443, rebinding) == "8.8.8.8"
    assert calls == ["rebind.example"]
    with pytest.raises(EgressRefused, match="non-public"):
        await checked_address("rebind.example", 443, rebinding)

    async def mixed(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.1"]

    with pytest.raises(EgressRefused, match="10.0.0.1"):
        await checked_address("mixed.example", 443, mixed)


async def test_the_proxy_connects_to_the_address_it_checked_not_a_second_answer(tmp_path) -> None:
    """A CONNECT by name: the name resolves to a public address first, to a listener on 127.0.0.1 after.
    The proxy connects to the first answer (and fails: it is not reachable from here) and never to the second."""
    from nanoclaw.vault.proxy import EgressProxy, Upstream

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    proxy = EgressProxy(tmp_path / "proxy", Upstream(base_url="http://127.0.0.1:1"))
    calls: list[str] = []

    async def rebinding(host: str, p: int) -> list[str]:
        calls.append(host)
        return ["1.2.3.4"] if len(calls) == 1 else ["127.0.0.1"]

    proxy.resolve = rebinding
    proxy.connect_timeout = 2.0
    sock = await proxy.open_session("s-1", "main")
    token = proxy.token("s-1")
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(f"CONNECT rebind.example:{port} HTTP/1.1\r\nHost: rebind.example:{port}\r\n"
                     f"Proxy-Authorization: Bearer {token}\r\n\r\n".encode())
        await writer.drain()
        status = (await asyncio.wait_for(reader.readline(), 10)).decode()
        writer.close()
    finally:
        await proxy.stop()
    with pytest.raises(BlockingIOError):
        listener.accept()  # the second answer was never connected to
    listener.close()
    assert calls == ["rebind.example"]
    assert status.startswith("HTTP/1.1 502"), status  # it tried 1.2.3.4, which this machine cannot reach
