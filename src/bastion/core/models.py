"""The data model: upstreams, catalog items, virtual servers. Frozen values, no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from bastion.core.policy import Policy
from bastion.core.ratelimit import RateLimits
from bastion.core.transforms import ToolTransform
from bastion.core.values import (
    ROLES,
    Era,
    Frozen,
    HealthStatus,
    Isolation,
    ItemKind,
    PinMode,
    PrefixMode,
    Role,
    Transport,
)

Visibility = Literal["private", "team", "public"]
VISIBILITIES: tuple[Visibility, ...] = ("private", "team", "public")

__all__ = ["ROLES", "Era", "Frozen", "HealthStatus", "Isolation", "ItemKind", "PinMode", "PrefixMode", "Role", "Transport"]


class OAuthClientCredentials(Frozen):
    """OAuth 2.0 client credentials grant (RFC 6749 4.4): Bastion gets a token for itself and sends
    it as `Authorization: Bearer` to the upstream. `client_secret` is sealed at rest, write-only."""

    type: Literal["oauth_client_credentials"] = "oauth_client_credentials"
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None


class OAuthUserGrant(Frozen):
    """OAuth 2.0 authorization code grant per user (RFC 6749 4.1 with PKCE): each user connects their
    own account once; Bastion keeps and refreshes that user's token. `client_secret` is sealed, write-only."""

    type: Literal["oauth_user"] = "oauth_user"
    authorization_url: str
    token_url: str
    client_id: str
    client_secret: str | None = None
    scope: str | None = None


class QueryApiKey(Frozen):
    """An API key sent as a query parameter (REST upstreams whose APIs take it so). `value` is sealed."""

    type: Literal["api_key_query"] = "api_key_query"
    name: str
    value: str


UpstreamAuth = Annotated[OAuthClientCredentials | OAuthUserGrant | QueryApiKey, Field(discriminator="type")]


class Selection(Frozen):
    """Operations of an OpenAPI document, by operationId, tag or path glob (`/pets/*`)."""

    operations: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def empty(self) -> bool:
        return not (self.operations or self.tags or self.paths)


class OpenApiSource(Frozen):
    """Where a REST upstream's OpenAPI document comes from (`url` of the spec, or inline `spec`),
    where its API is (`base_url`, else the document's first server), and which operations become tools."""

    spec: dict[str, Any] | None = None
    base_url: str | None = None
    include: Selection = Selection()
    exclude: Selection = Selection()


class UpstreamTokens(Frozen):
    """One user's tokens for one upstream (sealed at rest). `expires_at` is a Unix time, None if unstated."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None


class RegistryOrigin(Frozen):
    """The MCP Registry entry an upstream was installed from (so an update can be offered)."""

    source: str
    server: str
    version: str


class UpstreamSpec(Frozen):
    """How to reach one upstream MCP server, as the operator registered it."""

    name: str
    transport: Transport
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    isolation: Isolation = "shared"
    protocol: Era = "auto"
    enabled: bool = True
    auth: UpstreamAuth | None = None
    """How Bastion authenticates beyond `headers` (static headers / API keys need no more)."""
    openapi: OpenApiSource | None = None
    """For transport `openapi`: the document (at `url`, or inline) and what of it to expose."""
    credentials_error: str | None = None
    """Set when the stored (sealed) headers/env could not be opened; such an upstream is not connected."""
    # Ownership: the owning team, the user who registered it, and who may see it (core/identity.py).
    team: str | None = None
    owner: str | None = None
    visibility: Visibility = "private"
    pin: PinMode = "block"
    """Rug-pull protection (core/pinning.py): hold back (`block`) or flag (`warn`) unapproved definitions."""
    origin: RegistryOrigin | None = None
    destinations: tuple[str, ...] = ()
    """REST and A2A upstreams: the origins (`scheme://host[:port]`) approved to receive its stored
    credentials, as its document or card named them when the operator registered or last edited it
    (core/destinations.py); empty until its first discovery."""


class UpstreamState(Frozen):
    """What Bastion last learned about an upstream."""

    status: HealthStatus = "unknown"
    status_reason: str | None = None
    last_seen: datetime | None = None
    server_name: str | None = None
    server_version: str | None = None
    protocol_version: str | None = None


class Upstream(Frozen):
    spec: UpstreamSpec
    state: UpstreamState = UpstreamState()
    revision: int = 0
    """Its stored row's revision, counted up by every write of the spec (from a random start for a row
    made since migration 0015): a change is saved only if the row is still at the revision read."""


class CatalogItem(Frozen):
    """One tool, prompt, resource or resource template discovered on an upstream.

    `key` is the upstream's identifier for it (tool/prompt name, resource URI, URI template);
    `gateway_name` is Bastion's stable, collision-free name for it.
    """

    upstream: str
    kind: ItemKind
    key: str
    gateway_name: str
    definition: dict[str, Any]
    enabled: bool = True
    name_override: str | None = None
    description_override: str | None = None
    discovered_at: datetime | None = None
    """When Bastion first discovered it (kept across refreshes): who listed a name first owns it."""
    pin_status: Literal["new", "changed", "rejected"] | None = None
    """Set on the snapshot's copy when the definition is not the approved one (core/pinning.py)."""
    quarantined: bool = False
    """Held back by the upstream's pin mode: neither listed nor callable until approved."""

    @property
    def original_name(self) -> str:
        return str(self.definition.get("name", self.key))

    @property
    def description(self) -> str | None:
        if self.description_override is not None:
            return self.description_override
        value = self.definition.get("description")
        return value if isinstance(value, str) else None


class VirtualServerSpec(Frozen):
    """A composed MCP server: chosen items (by gateway name) and whole upstreams."""

    name: str
    description: str | None = None
    tools: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    upstreams: tuple[str, ...] = ()
    prefix: PrefixMode = "always"
    policy: Policy | None = None
    rate_limits: RateLimits | None = None
    team: str | None = None
    owner: str | None = None
    visibility: Visibility = "private"
    transforms: dict[str, ToolTransform] = Field(default_factory=dict)
    """Per exposed tool, keyed by its gateway name (core/transforms.py)."""
    discovery: Literal["list", "search"] = "list"
    """`search`: clients see three meta-tools (search, describe, call) instead of the whole catalog."""


class RewrapReport(Frozen):
    """What a vault key rotation did: secrets re-wrapped, already current, and those that do not open."""

    key_id: str
    rewrapped: int
    already_current: int
    failed: tuple[str, ...] = ()


class Discovery(Frozen):
    """Everything one discovery pass found on an upstream."""

    items: tuple[CatalogItem, ...]
    server_name: str | None = None
    server_version: str | None = None
    protocol_version: str | None = None
    skipped: tuple[str, ...] = ()
    """What it offers that Bastion left out, each saying what and why (an OpenAPI operation whose path
    cannot be sent as it means, or whose tool is too large; a header parameter a proxy sets)."""
    destinations: tuple[str, ...] = ()
    """The origins its calls go to, with the upstream's credentials (REST and A2A upstreams only)."""
