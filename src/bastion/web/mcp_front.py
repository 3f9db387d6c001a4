"""One virtual server's MCP front: its SDK server, session manager, SSE transport, and who is
connected to it (2025-11-25 sessions, for list-change notices and the fast path; a bus for
2026-07-28 `subscriptions/listen` streams).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from mcp.server import Server
from mcp.server.connection import Connection
from mcp.server.sse import SseServerTransport
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)

from bastion.core.compose import ServerView
from bastion.core.models import ItemKind
from bastion.core.policy import Caller
from bastion.core.ports import SessionKey, SessionRecord
from bastion.web.bridge import ask_on_connection, capabilities_of
from bastion.web.mcp_fast import LegacySession
from bastion.web.relay import session_log_level
from bastion.web.sdk_sessions import SessionManager, hold_transport

log = logging.getLogger("bastion.mcp")


@dataclass
class Owner:
    connection: weakref.ref[Connection]
    principal: str | None
    caller: Caller | None = None
    """What the policy knows of the principal, for deliveries made outside a request."""


@dataclass(frozen=True, slots=True)
class Watch:
    """One session's subscription to a resource: from which upstream, and for whom."""

    upstream: str
    caller: Caller


@dataclass
class Held:
    """A session this replica serves from the shared store, and its record as last written or read here."""

    key: SessionKey
    record: SessionRecord
    touched: float


@dataclass
class Front:
    """One virtual server's SDK server, session manager and SSE transport."""

    name: str
    server: Server[Any]
    manager: SessionManager
    sse: SseServerTransport
    bus: InMemorySubscriptionBus
    """Change events for 2026-07-28 clients' `subscriptions/listen` streams."""
    listen: ListenHandler
    stop: anyio.Event = field(default_factory=anyio.Event)
    connections: weakref.WeakSet[Connection] = field(default_factory=weakref.WeakSet)
    owners: dict[str, Owner] = field(default_factory=dict)
    resource_subs: dict[str, weakref.WeakKeyDictionary[Connection, Watch]] = field(default_factory=dict)
    """2025-11-25 sessions subscribed to each resource URI."""
    listeners: weakref.WeakSet[ListenHandler] = field(default_factory=weakref.WeakSet)
    """The handlers of open 2026-07-28 listen streams (one each: each filters for its caller)."""
    sessions: dict[str, LegacySession] = field(default_factory=dict)
    held: dict[str, Held] = field(default_factory=dict)
    """Sessions kept in the shared store, by id (see web/shared_sessions.py)."""
    restoring: anyio.Lock = field(default_factory=anyio.Lock)

    def remember(self, connection: Connection, principal: str | None, caller: Caller | None = None) -> None:
        self.connections.add(connection)
        if connection.session_id and connection.session_id not in self.owners:
            self.owners = {sid: o for sid, o in self.owners.items() if o.connection() is not None}
            self.owners[connection.session_id] = Owner(weakref.ref(connection), principal, caller)

    def caller_of(self, connection: Connection) -> Caller:
        """The policy's view of the principal that owns `connection` (nobody in particular if unknown)."""
        owner = self.owners.get(connection.session_id) if connection.session_id else None
        return owner.caller if owner is not None and owner.caller is not None else Caller()

    def close_listeners(self) -> None:
        """End every open listen stream gracefully (the server is gone, or Bastion stops)."""
        self.listen.close()
        for handler in list(self.listeners):
            handler.close()

    def legacy_session(self, session_id: str) -> LegacySession | None:
        """The fast path's view of a live, initialized SDK session; None sends the request to the SDK."""
        transport = self.manager.transport(session_id)
        owner = self.owners.get(session_id)
        connection = owner.connection() if owner is not None else None
        if transport is None or transport.is_terminated or connection is None or not connection.initialize_accepted:
            self.sessions.pop(session_id, None)
            return None
        session = self.sessions.get(session_id)
        if session is None:
            assert owner is not None
            state = connection.state
            session = LegacySession(
                session_id,
                connection.protocol_version,
                owner.principal,
                hold=partial(hold_transport, transport),
                wants_logs=lambda: session_log_level(state) is not None,
                capabilities=capabilities_of(connection),
                ask=ask_on_connection(connection),
            )
            self.sessions = {sid: v for sid, v in self.sessions.items() if self.manager.transport(sid) is not None}
            self.sessions[session_id] = session
        return session


_CHANGE_EVENTS: tuple[tuple[tuple[ItemKind, ...], str, ServerEvent], ...] = (
    (("tool",), "send_tool_list_changed", ToolsListChanged()),
    (("prompt",), "send_prompt_list_changed", PromptsListChanged()),
    (("resource", "resource_template"), "send_resource_list_changed", ResourcesListChanged()),
)


async def notify_changes(front: Front, before: ServerView | None, after: ServerView) -> None:
    """Tell the virtual server's clients which of its lists changed: 2025-11-25 sessions on their
    standalone stream, 2026-07-28 clients on their `subscriptions/listen` streams."""
    if before is None:
        return
    changed = [
        (send, event)
        for kinds, send, event in _CHANGE_EVENTS
        if any(before.lists.get(k) != after.lists.get(k) for k in kinds)
    ]
    for _, event in changed:
        await front.bus.publish(event)
    for connection in list(front.connections) if changed else ():
        if not connection.has_standalone_channel:
            continue
        for send, _ in changed:
            try:
                await getattr(connection, send)()
            except Exception:
                log.debug("could not notify a client of %s", after.name, exc_info=True)
                front.connections.discard(connection)
                break
