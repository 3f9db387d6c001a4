"""Ports: what the pipeline and control plane need from the outside world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bastion.core.grants import ApiToken
from bastion.core.models import CatalogItem, Discovery, Upstream, UpstreamSpec, UpstreamState, VirtualServerSpec

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
LogCallback = Callable[[dict[str, Any]], Awaitable[None]]
"""Receives the params of an upstream's `notifications/message` for this call."""
AskCallback = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Puts one input request (`sampling/createMessage`, `elicitation/create`, `roots/list`) to the
client as a live request and returns its result, or a JSON-RPC error object."""

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


@dataclass(frozen=True, slots=True)
class CallHooks:
    """What a call relays back to its caller while it runs: progress, logs at or above a level, and
    (for a 2025-11-25 client) the questions an upstream's `input_required` result asks it."""

    on_progress: ProgressCallback | None = None
    log_level: str | None = None
    on_log: LogCallback | None = None
    ask: AskCallback | None = None


class ConfigRepo(Protocol):
    """Durable configuration: upstreams, their catalog, virtual servers, API tokens."""

    async def list_upstreams(self) -> list[Upstream]: ...
    async def get_upstream(self, name: str) -> Upstream | None: ...
    async def create_upstream(self, upstream: Upstream, items: Sequence[CatalogItem]) -> None: ...
    async def update_upstream_spec(self, spec: UpstreamSpec) -> None: ...
    async def save_upstream_state(self, name: str, state: UpstreamState) -> None: ...
    async def replace_items(self, upstream: str, items: Sequence[CatalogItem]) -> list[CatalogItem]: ...
    async def delete_upstream(self, name: str) -> None: ...
    async def list_items(self) -> list[CatalogItem]: ...
    async def update_item(self, item: CatalogItem) -> None: ...
    async def list_servers(self) -> list[VirtualServerSpec]: ...
    async def get_server(self, name: str) -> VirtualServerSpec | None: ...
    async def save_server(self, spec: VirtualServerSpec, *, create: bool) -> None: ...
    async def delete_server(self, name: str) -> None: ...
    async def get_secret_hash(self, key: str) -> str | None: ...
    async def set_secret_hash(self, key: str, value: str) -> None: ...
    async def create_api_token(self, token: ApiToken, token_hash: str) -> None: ...
    async def list_api_tokens(self) -> list[ApiToken]: ...
    async def get_api_token_by_hash(self, token_hash: str) -> ApiToken | None: ...
    async def revoke_api_token(self, token_id: str, at: datetime) -> None: ...
    async def touch_api_token(self, token_id: str, at: datetime, ip: str | None) -> None: ...


class StateSealer(Protocol):
    """Seals state that a client carries back verbatim; unseal raises ValueError if it was altered
    or is presented in another context."""

    def seal(self, payload: dict[str, Any], context: str) -> str: ...
    def unseal(self, token: str, context: str) -> dict[str, Any]: ...
    def owns(self, token: object) -> bool: ...


class ResourceSubscriber(Protocol):
    """Counted interest in an upstream resource's updates: the first subscribes, the last drops it."""

    async def subscribe(self, upstream: str, uri: str) -> None: ...
    async def unsubscribe(self, upstream: str, uri: str) -> None: ...


class UpstreamCaller(Protocol):
    """Send MCP requests to upstreams over pooled connections."""

    async def request(
        self,
        upstream: str,
        method: str,
        params: dict[str, Any],
        *,
        user: str | None,
        timeout: float,
        hooks: CallHooks | None = None,
    ) -> dict[str, Any]: ...

    async def discover(self, spec: UpstreamSpec) -> Discovery: ...

    def asks_mid_call(self, upstream: str) -> bool:
        """Whether the upstream may send sampling/elicitation/roots requests during a call (2025-11-25)."""
        ...


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Finds a 2025-11-25 session's record: its id and a keyed hash of the caller's bearer token,
    so the id alone neither finds nor opens it."""

    session_id: str
    token_hash: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What any replica needs to serve the next request of a 2025-11-25 session."""

    server: str
    """The virtual server the session was opened on; it serves no other."""
    protocol_version: str
    client_info: dict[str, Any]
    capabilities: dict[str, Any]
    owner: str | None
    """The principal id that opened the session."""
    created: float
    last_seen: float
    log_level: str | None = None
    subscriptions: tuple[str, ...] = ()


SessionChanged = Callable[[str], Awaitable[None]]
"""Told the address (see `SessionStore.address`) of a record some replica changed or deleted."""
SessionRelayed = Callable[[str, bytes], Awaitable[None]]
"""Told a session's address and a (sealed) message another replica relayed for it."""


class SessionStore(Protocol):
    """Sealed 2025-11-25 session records shared by every replica, expiring when idle."""

    def address(self, key: SessionKey) -> str:
        """An opaque name of the record, the same on every replica; reveals neither id nor token."""
        ...

    async def load(self, key: SessionKey) -> SessionRecord | None: ...
    async def save(self, key: SessionKey, record: SessionRecord) -> None: ...
    async def touch(self, key: SessionKey) -> None: ...
    async def delete(self, key: SessionKey) -> None: ...

    async def relay(self, address: str, payload: bytes) -> None:
        """Hand `payload` to every replica (the one holding the session at `address` takes it)."""
        ...

    async def watch(self, on_change: SessionChanged, on_relayed: SessionRelayed) -> None:
        """Call `on_change` for records other replicas save or delete, and `on_relayed` for messages
        they relay, until cancelled."""
        ...
