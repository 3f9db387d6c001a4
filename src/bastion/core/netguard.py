"""Which network addresses Bastion may connect to as an upstream: pure rules against SSRF.

Public addresses are always allowed. Loopback and private ranges (RFC 1918, CGNAT, IPv6 ULA) are
refused unless the admin allows them, all of them or listed networks. Link-local (cloud metadata
services live there), multicast, unspecified and reserved addresses are refused unless a listed
network names them explicitly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from bastion.core.errors import Forbidden
from bastion.core.grants import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # CGNAT: private in practice, not `is_private` in 3.11


class AddressRefused(Forbidden):
    title = "Upstream address refused"


def _kind(address: Address) -> str | None:
    """Why `address` needs permission, or None for an ordinary public address."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "a multicast, unspecified or reserved address"
    if address.is_private or (address.version == 4 and address in _SHARED):
        return "a private address"
    return None


def refusal(address: str, *, allow_private: bool, allowed: Sequence[Network]) -> str | None:
    """None if Bastion may connect to `address`; otherwise what kind of address it is."""
    ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    kind = _kind(ip)
    if kind is None or any(ip in network for network in allowed):
        return None
    if allow_private and kind in ("a loopback address", "a private address"):
        return None
    return kind
