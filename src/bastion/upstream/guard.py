"""The SSRF guard on upstream URLs: resolve the host and refuse addresses the rules forbid.

Checked before every connection attempt (registration, update and each reconnect), so a name that
later resolves somewhere forbidden is refused then too. A name that does not resolve is left to
the connection attempt, which reports it.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import anyio

from bastion.core.grants import Network
from bastion.core.models import UpstreamSpec
from bastion.core.netguard import AddressRefused, refusal


class AddressGuard:
    def __init__(self, *, allow_private: bool, allowed: tuple[Network, ...] = ()) -> None:
        self._allow_private = allow_private
        self._allowed = allowed

    async def check(self, spec: UpstreamSpec) -> None:
        """Raise AddressRefused if `spec` is an HTTP upstream whose host resolves to a forbidden address."""
        if spec.transport == "stdio" or not spec.url:
            return
        await self.check_url(spec.url, f"upstream {spec.name!r}")

    async def check_url(self, url: str, what: str) -> None:
        """Raise AddressRefused if `url`'s host resolves to a forbidden address (`what` names it)."""
        host = urlsplit(url).hostname
        if not host:
            return
        try:
            infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return  # unresolvable: the connection attempt says so
        for *_, sockaddr in infos:
            kind = refusal(str(sockaddr[0]), allow_private=self._allow_private, allowed=self._allowed)
            if kind is not None:
                raise AddressRefused(
                    f"{what}: its host resolves to {kind}; Bastion connects to loopback and "
                    "private networks only when the admin allows them (BASTION_ALLOW_PRIVATE_UPSTREAMS, "
                    "or BASTION_UPSTREAM_ALLOWED_NETWORKS for chosen ranges)"
                )
