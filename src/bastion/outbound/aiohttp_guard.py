"""aiohttp sessions that connect only where the SSRF rules allow (the lean 2026-07-28 upstream path).

Names go through a resolver that resolves once and checks every address (rules.py); the connector
connects to exactly the addresses it returns. Every socket the connector opens, for an IP literal
in the URL too (aiohttp skips the resolver for those), passes a socket factory that checks the
address it is about to connect to. Redirects are the caller's business: pass allow_redirects=False.
"""

from __future__ import annotations

import socket

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult

from bastion.core.netguard import AddressRefused, refusal
from bastion.outbound.rules import Resolve, Rules


class _CheckingResolver(AbstractResolver):
    def __init__(self, rules: Rules, resolve: Resolve) -> None:
        self._rules = rules
        self._resolve = resolve

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            addresses = await self._rules.addresses(host, port, self._resolve)
        except AddressRefused as exc:
            raise OSError(exc.detail) from None
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def _socket_factory(rules: Rules) -> SocketFactoryType:
    def checked_socket(info: AddrInfoType) -> socket.socket:
        family, kind, proto, _name, address = info
        kind_of = refusal(str(address[0]), allow_private=rules.allow_private, allowed=rules.allowed)
        if kind_of is not None:
            raise OSError(f"refused by Bastion's SSRF rules: {kind_of}")
        sock = socket.socket(family=family, type=kind, proto=proto)
        sock.setblocking(False)
        return sock

    return checked_socket


def guarded_session(
    rules: Rules, resolve: Resolve, *, limit: int, limit_per_host: int, keepalive: float, connect_timeout: float
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=limit_per_host,
        keepalive_timeout=keepalive,
        resolver=_CheckingResolver(rules, resolve),
        socket_factory=_socket_factory(rules),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        auto_decompress=True,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )
