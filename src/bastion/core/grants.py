"""API tokens as data, and what one may do: pure decisions over a token's grants and a request line.

Deny by default: a token reaches a virtual server's MCP endpoints only with "mcp" and the
server among its own, reads the REST catalog only with "read", and never writes or manages tokens.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from bastion.core.compose import ServerView
from bastion.core.errors import Forbidden
from bastion.core.models import Frozen

Permission = Literal["mcp", "read"]
PERMISSIONS: tuple[Permission, ...] = ("mcp", "read")
ALL_SERVERS: Final = "*"
AllServers = Literal["*"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

READABLE_COLLECTIONS = frozenset(
    {"tools", "prompts", "resources", "servers", "upstreams", "openapi.json", "docs", "catalog"}
)
_READ_METHODS = frozenset({"GET", "HEAD"})


class ApiToken(Frozen):
    """A scoped API token as stored: never its secret, which exists only in the creator's hands."""

    id: str
    name: str
    servers: tuple[str, ...] | AllServers
    permissions: tuple[Permission, ...]
    created_at: datetime
    expires_at: datetime | None = None
    ip_allow: tuple[str, ...] = ()
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    last_used_ip: str | None = None
    user: str | None = None
    """The user who made it (it acts for them, never beyond their rights); None for the admin's."""

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class Grants:
    """What an API token may do. A principal without grants (the admin) may do everything."""

    servers: frozenset[str] | AllServers
    permissions: frozenset[Permission]
    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, token: ApiToken) -> Grants:
        servers = token.servers if token.servers == ALL_SERVERS else frozenset(token.servers)
        return cls(servers, frozenset(token.permissions), parse_networks(token.ip_allow))


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks; host bits are ignored. Raises ValueError naming the bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ValueError(f"not a network address or CIDR: {cidr!r}") from None
    return tuple(networks)


def ip_allowed(networks: tuple[Network, ...], client_ip: str | None) -> bool:
    """No networks means any address; otherwise an unknown or unparsable address is refused."""
    if not networks:
        return True
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


_CONNECTION_PATHS = frozenset({"connect", "connection"})
# What follows /api/v1/servers/{name}/ on a virtual server's REST facade (using it, like its MCP endpoint).
FACADE_PARTS = frozenset({"tools", "resources", "prompts", "openapi.json", "docs", "calls"})


def used_server(path: str) -> str | None:
    """The virtual server a path uses: its MCP endpoints (/servers/{name}/...) or its REST facade
    (/api/v1/servers/{name}/tools/...); None for any other path (configuration, catalog)."""
    parts = path.split("/")
    if parts[1:2] == ["servers"]:
        return parts[2] if len(parts) > 2 else ""
    if parts[1:4] == ["api", "v1", "servers"] and len(parts) > 5 and parts[5] in FACADE_PARTS:
        return parts[4]
    return None


def authorize_server(grants: Grants, server: str) -> None:
    """Raise Forbidden unless these grants reach the MCP endpoints of virtual server `server`."""
    if "mcp" not in grants.permissions:
        raise Forbidden("this token lacks the 'mcp' permission", missing="permission:mcp")
    if grants.servers != ALL_SERVERS and server not in grants.servers:
        raise Forbidden(f"this token may not use the virtual server {server!r}", missing=f"server:{server}")


def authorize(grants: Grants, method: str, path: str) -> None:
    """Raise Forbidden, saying what is missing, unless these grants allow `method path`."""
    parts = path.split("/")  # ['', 'servers', name, ...] or ['', 'api', 'v1', collection, ...]
    server = used_server(path)
    if server is not None:
        authorize_server(grants, server)
        return
    collection = parts[3] if parts[1:3] == ["api", "v1"] and len(parts) > 3 else None
    if collection == "tokens":
        raise Forbidden("API tokens cannot manage API tokens; use the admin token", missing="admin")
    if collection == "upstreams" and len(parts) == 6 and parts[5] in _CONNECTION_PATHS:
        # Connecting one's own account to a per-user upstream is part of using it, not configuration.
        if "mcp" not in grants.permissions:
            raise Forbidden("this token lacks the 'mcp' permission", missing="permission:mcp")
        return
    if method not in _READ_METHODS:
        raise Forbidden("API tokens cannot change configuration; use the admin token", missing="admin")
    if path == "/v0.1/servers" or path.startswith("/v0.1/servers/"):
        # Bastion's registry API lists the servers this token may use (filtered where it is served).
        if not {"mcp", "read"} & set(grants.permissions):
            raise Forbidden("this token lacks the 'mcp' or 'read' permission", missing="permission:read")
        return
    if collection not in READABLE_COLLECTIONS:
        raise Forbidden(f"API tokens may not access {path}", missing="admin")
    if "read" not in grants.permissions:
        raise Forbidden("this token lacks the 'read' permission", missing="permission:read")


@dataclass(frozen=True, slots=True)
class Reach:
    """What a token limited to some virtual servers may read in the REST catalog: those servers,
    the items they expose (upstream, kind, key) and the upstreams those come from."""

    servers: frozenset[str]
    upstreams: frozenset[str]
    items: frozenset[tuple[str, str, str]]

    def allows_item(self, upstream: str, kind: str, key: str) -> bool:
        return (upstream, kind, key) in self.items


def reach_of(grants: Grants | None, views: Mapping[str, ServerView]) -> Reach | None:
    """The catalog `grants` may read; None when unlimited (no grants, or every server)."""
    if grants is None or grants.servers == ALL_SERVERS:
        return None
    servers = frozenset(name for name in grants.servers if name in views)
    items: set[tuple[str, str, str]] = set()
    for name in servers:
        view = views[name]
        for exposed in (view.tools, view.prompts, view.resources, view.templates):
            items.update((i.upstream, i.kind, i.key) for i in exposed.values())
    upstreams = frozenset(upstream for upstream, _, _ in items) | frozenset(
        u for name in servers for u in views[name].upstreams
    )
    return Reach(servers, upstreams, frozenset(items))
