"""The data model: upstreams, catalog items, virtual servers. Frozen values, no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Transport = Literal["streamable-http", "sse", "stdio"]
Isolation = Literal["shared", "per_user"]
ItemKind = Literal["tool", "prompt", "resource", "resource_template"]
PrefixMode = Literal["always", "never"]
HealthStatus = Literal["unknown", "healthy", "unhealthy", "disabled"]
Visibility = Literal["private", "team", "public"]
VISIBILITIES: tuple[Visibility, ...] = ("private", "team", "public")



class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
    enabled: bool = True
    # Ownership: the owning team, the user who registered it, and who may see it (core/identity.py).
    team: str | None = None
    owner: str | None = None
    visibility: Visibility = "private"


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
    team: str | None = None
    owner: str | None = None
    visibility: Visibility = "private"


class Discovery(Frozen):
    """Everything one discovery pass found on an upstream."""

    items: tuple[CatalogItem, ...]
    server_name: str | None = None
    server_version: str | None = None
    protocol_version: str | None = None
