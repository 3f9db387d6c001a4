"""The Host header check: answer 421 Misdirected Request unless the request names this gateway.

A browser page on a rebinding domain (evil.example resolving to 127.0.0.1) reaches a local
gateway with `Host: evil.example`; refusing foreign hosts closes that door, as the MCP SDK's
transport security does. Ports are not compared: a host name is this gateway's on any port.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_HOST = "*"
PROBES = frozenset({"/healthz", "/readyz"})
"""Answered whatever the Host: load balancers and orchestrators probe by IP address."""


def hostname(header: str) -> str | None:
    """The host name in a Host header value (lower case, IPv6 without brackets), None if malformed."""
    try:
        parts = urlsplit(f"//{header.strip()}")
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        return None
    return parts.hostname or None


def allowed_hosts(public_url: str | None, bind_host: str, extra: Iterable[str]) -> frozenset[str]:
    """Bastion's own names: its public URL's host, loopback names, the bind address unless it is a
    wildcard, and the operator's list (BASTION_ALLOWED_HOSTS; `*` turns the check off)."""
    names = set(LOCAL_HOSTS)
    if public_url:
        public = urlsplit(public_url).hostname
        if public:
            names.add(public)
    if bind_host not in ("", "0.0.0.0", "::"):
        names.add(bind_host.strip("[]").lower())
    for entry in extra:
        names.add(entry if entry == ANY_HOST else (hostname(entry) or entry.lower()))
    return frozenset(names)


def host_allowed(header: bytes | None, allowed: frozenset[str]) -> bool:
    if ANY_HOST in allowed:
        return True
    if header is None:
        return False
    name = hostname(header.decode("latin-1"))
    return name is not None and name in allowed
