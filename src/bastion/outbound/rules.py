"""Resolve a host once and check every address it names against the SSRF rules (core.netguard).

The addresses returned are the only ones a connection may use: connecting to them (not to the name
again) leaves no window for a name to resolve elsewhere between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from bastion.core.grants import Network
from bastion.core.netguard import AddressRefused, refusal

log = logging.getLogger("bastion.outbound")

Resolve = Callable[[str, int], Awaitable[list[str]]]
"""`(host name, port) -> IP addresses`; raises OSError when the name does not resolve."""

ADMIN_HINT = (
    "Bastion connects to loopback and private networks only when the admin allows them "
    "(BASTION_ALLOW_PRIVATE_UPSTREAMS, or BASTION_UPSTREAM_ALLOWED_NETWORKS for chosen ranges)"
)


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


@dataclass(frozen=True)
class Rules:
    """Where Bastion may connect. `trusted_hosts` are names the operator configured (an identity
    provider): resolved and connected the same way, but not held to the private-network rule."""

    allow_private: bool
    allowed: tuple[Network, ...] = ()
    trusted_hosts: frozenset[str] = field(default_factory=frozenset)

    def trusting(self, *hosts: str | None) -> Rules:
        names = {h.lower() for h in hosts if h}
        return Rules(self.allow_private, self.allowed, self.trusted_hosts | names)

    async def addresses(self, host: str, port: int, resolve: Resolve = system_resolve) -> list[str]:
        """The addresses of `host` Bastion may connect to: all of them, or AddressRefused."""
        literal = _literal(host)
        if literal is not None:
            found = [literal]
        else:
            try:
                found = await resolve(host, port)
            except OSError as exc:
                log.debug("%s does not resolve: %s", host, exc)
                raise AddressRefused(f"{host} does not resolve") from None
            if not found:
                raise AddressRefused(f"{host} does not resolve")
        if host.lower() in self.trusted_hosts:
            return found
        for address in found:
            kind = refusal(address, allow_private=self.allow_private, allowed=self.allowed)
            if kind is not None:
                raise AddressRefused(f"{host} resolves to {kind}; {ADMIN_HINT}")
        return found
