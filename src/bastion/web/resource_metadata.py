"""OAuth protected resource metadata (RFC 9728) for each virtual server, and the
`WWW-Authenticate` challenge that points MCP clients at it (MCP authorization, RFC 6750)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.responses import Response

from bastion.core.errors import BastionError, Forbidden, Unauthenticated

PREFIX = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True)
class ResourceMetadata:
    """Where the virtual servers live and which authorization server issues tokens for them."""

    base_url: str
    issuer: str | None
    scopes: tuple[str, ...]

    def resource(self, server: str) -> str:
        return f"{self.base_url.rstrip('/')}/servers/{server}/mcp"

    def metadata_url(self, server: str) -> str:
        return f"{self.base_url.rstrip('/')}{PREFIX}/servers/{server}/mcp"

    def document(self, server: str) -> dict[str, object]:
        return {
            "resource": self.resource(server),
            "authorization_servers": [self.issuer] if self.issuer else [],
            "scopes_supported": list(self.scopes),
            "bearer_methods_supported": ["header"],
            "resource_name": f"Bastion virtual server {server}",
        }

    def challenge(self, path: str, exc: BastionError, presented: bool) -> str | None:
        """The WWW-Authenticate value for a refused request to `path`, or None if none applies."""
        insufficient = isinstance(exc, Forbidden) and "scope" in exc.extra
        if not isinstance(exc, Unauthenticated) and not insufficient:
            return None
        parts = ['Bearer realm="bastion"']
        server = server_of(path)
        if server is not None and self.issuer is not None:
            parts.append(f'resource_metadata="{self.metadata_url(server)}"')
        if insufficient:
            parts.append('error="insufficient_scope"')
            parts.append(f'scope="{exc.extra["scope"]}"')
        else:
            if self.scopes:
                parts.append(f'scope="{" ".join(self.scopes)}"')
            if presented:
                parts.append('error="invalid_token"')
        return ", ".join(parts)


def server_of(path: str) -> str | None:
    """The virtual server a `/servers/{name}/...` path names."""
    parts = path.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "servers" and parts[2] else None


def metadata_server(path: str) -> str | None:
    """The server of a `/.well-known/oauth-protected-resource/servers/{name}/mcp` path, else None."""
    rest = path[len(PREFIX) :] if path.startswith(PREFIX + "/") else ""
    parts = rest.split("/")  # ['', 'servers', name, 'mcp']
    if len(parts) == 4 and parts[1] == "servers" and parts[2] and parts[3] == "mcp":
        return parts[2]
    return None


def metadata_response(metadata: ResourceMetadata, server: str) -> Response:
    # Browser-based MCP clients read this cross-origin before they hold any token.
    return Response(
        json.dumps(metadata.document(server)),
        media_type="application/json",
        headers={"access-control-allow-origin": "*", "cache-control": "max-age=300"},
    )
