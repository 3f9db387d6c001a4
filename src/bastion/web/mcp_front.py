"""One virtual server's MCP front: its SDK server, session manager, SSE transport, and who is
connected to it (2025-11-25 sessions, for list-change notices and the fast path; a bus for
2026-07-28 `subscriptions/listen` streams).
"""

from __future__ import annotations

import hmac
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from mcp.server import Server
from mcp.server.connection import Connection
from mcp.server.sse import SseServerTransport
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, SubscriptionBus
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

from bastion.core.compose import ServerView
from bastion.core.models import ItemKind
from bastion.core.policy import Caller
from bastion.core.ports import SessionKey, SessionRecord
from bastion.pipeline.context import Credential, Principal
from bastion.web.bridge import ask_on_connection, capabilities_of
from bastion.web.mcp_fast import LegacySession
from bastion.web.relay import session_key, session_log_level
from bastion.web.session_manager import SessionManager

log = logging.getLogger("bastion.mcp")


@dataclass
class Owner:
    connection: weakref.ref[Connection]
    principal: str | None


@dataclass(frozen=True, slots=True)
class Watch:
    """One session's subscription to a resource: from which upstream, and for whom."""

    upstream: str
    caller: Caller


@dataclass(frozen=True, slots=True)
class Guard:
    """What proved an open stream's caller (re-checked when a credential is revoked), and how to end
    the stream, given the stream itself (a reference to it here would keep it alive)."""

    credential: Credential
    close: Callable[[Any], Awaitable[None]]
    principal: Principal | None = None
    """Whom the credential proved when the stream opened (its token id, its user): a revocation
    re-checks only the streams it may concern. None when not known: every revocation concerns it."""


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
    stop: anyio.Event = field(default_factory=anyio.Event)
    connections: weakref.WeakSet[Connection] = field(default_factory=weakref.WeakSet)
    owners: dict[str, Owner] = field(default_factory=dict)
    resource_subs: dict[str, weakref.WeakKeyDictionary[Connection, Watch]] = field(default_factory=dict)
    """2025-11-25 sessions subscribed to each resource URI."""
    callers: weakref.WeakKeyDictionary[Connection, Caller] = field(default_factory=weakref.WeakKeyDictionary)
    """Whose each 2025-11-25 session is, as the policy sees them (for deliveries outside a request)."""
    listeners: weakref.WeakSet[ListenHandler] = field(default_factory=weakref.WeakSet)
    """The handlers of open 2026-07-28 listen streams (one each: each filters for its caller)."""
    sessions: dict[str, LegacySession] = field(default_factory=dict)
    held: dict[str, Held] = field(default_factory=dict)
    """Sessions kept in the shared store, by id (see web/shared_sessions.py)."""
    restoring: anyio.Lock = field(default_factory=anyio.Lock)
    guards: weakref.WeakKeyDictionary[Any, Guard] = field(default_factory=weakref.WeakKeyDictionary)
    """The credential behind each open long-lived stream: a 2025-11-25 session (by its connection),
    an HTTP+SSE session, a 2026-07-28 listen stream (by its handler)."""

    def guard(self, stream: Any, credential: Credential | None, close: Callable[[Any], Awaitable[None]]) -> None:
        """Remember what proved `stream`'s caller, the first time it is seen (see McpFront.recheck),
        and its successor: an access token refreshed from the same OAuth grant is what a re-check
        verifies from then on, so the expiry of the one it replaced does not end the session."""
        if credential is None:
            return
        principal = credential.verified[1] if credential.verified is not None else None
        guard = self.guards.get(stream)
        if guard is None or _refreshed(guard, credential, principal):
            self.guards[stream] = Guard(Credential(credential.authorization, credential.client_ip), close, principal)

    def remember(self, connection: Connection, principal: str | None, caller: Caller | None = None) -> None:
        self.connections.add(connection)
        if caller is not None and connection not in self.callers:
            self.callers[connection] = caller
        if connection.session_id and connection.session_id not in self.owners:
            self.owners = {sid: o for sid, o in self.owners.items() if o.connection() is not None}
            self.owners[connection.session_id] = Owner(weakref.ref(connection), principal)

    def caller_of(self, connection: Connection) -> Caller:
        """The policy's view of the principal that owns `connection` (nobody in particular if unknown)."""
        return self.callers.get(connection) or Caller()

    def close_listeners(self) -> None:
        """End every open listen stream gracefully (the server is gone, or Bastion stops)."""
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
        if not self.manager.admits(session_id):
            return None  # making way for its caller's new session: the SDK path answers 404 and ends it
        session = self.sessions.get(session_id)
        if session is None:
            assert owner is not None
            state = connection.state
            session = LegacySession(
                session_id,
                connection.protocol_version,
                owner.principal,
                hold=partial(self.manager.hold, session_id),
                wants_logs=lambda: session_log_level(state) is not None,
                capabilities=capabilities_of(connection),
                ask=ask_on_connection(connection, partial(self.manager.streams_reachable, session_id)),
                key=session_key(state, connection.session_id),
                events=partial(self.manager.events_of, session_id),
                requests=partial(self.manager.request_ids, session_id),
            )
            self.sessions = {sid: v for sid, v in self.sessions.items() if self.manager.transport(sid) is not None}
            self.sessions[session_id] = session
        return session


def _refreshed(guard: Guard, credential: Credential, principal: Principal | None) -> bool:
    """Whether `credential` is a later access token of the OAuth grant behind `guard`'s (one that
    lasts longer: a request still carrying the token it replaced does not bring that one back)."""
    before, after = guard.principal, principal
    if before is None or after is None or before.oauth_grant is None or after.oauth_grant is None:
        return False
    if credential.authorization == guard.credential.authorization:
        return False
    if before.expires is not None and (after.expires is None or after.expires < before.expires):
        return False
    return hmac.compare_digest(before.oauth_grant.encode(), after.oauth_grant.encode())


_CHANGE_EVENTS: tuple[tuple[tuple[ItemKind, ...], str, ServerEvent], ...] = (
    (("tool",), "send_tool_list_changed", ToolsListChanged()),
    (("prompt",), "send_prompt_list_changed", PromptsListChanged()),
    (("resource", "resource_template"), "send_resource_list_changed", ResourcesListChanged()),
)


def _lists_of(view: ServerView, caller: Caller | None) -> Any:
    """What `caller` is shown of `view` (None: everything)."""
    restricted = view.restricted(caller) if caller is not None else None
    return restricted if restricted is not None else view


def seen_changed(kinds: tuple[ItemKind, ...], before: ServerView, after: ServerView, caller: Caller | None) -> bool:
    """Whether the lists of `kinds` that `caller` is shown differ between the two views."""
    old, new = _lists_of(before, caller), _lists_of(after, caller)
    return any(old.lists.get(k) != new.lists.get(k) for k in kinds)


@dataclass(frozen=True)
class ListChange:
    """A list change as published on a front's bus; each stream's `CallerBus` passes `event` on only
    if its caller's own lists changed (a change to what the policy hides is not announced)."""

    event: ServerEvent
    kinds: tuple[ItemKind, ...]
    before: ServerView
    after: ServerView


class CallerBus:
    """One listen stream's view of its front's bus (the SDK's `SubscriptionBus`): list changes only
    when the caller's lists changed, resource updates only when `may_hear` their URI."""

    def __init__(
        self, bus: SubscriptionBus, caller: Caller | None = None, may_hear: Callable[[str], bool] | None = None
    ) -> None:
        self._bus = bus
        self._caller = caller
        self._may_hear = may_hear

    async def publish(self, event: ServerEvent) -> None:
        await self._bus.publish(event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        def deliver(event: Any) -> None:
            if isinstance(event, ListChange):
                if seen_changed(event.kinds, event.before, event.after, self._caller):
                    listener(event.event)
            elif not isinstance(event, ResourceUpdated) or self._may_hear is None or self._may_hear(event.uri):
                listener(event)

        return self._bus.subscribe(deliver)


async def notify_changes(front: Front, before: ServerView | None, after: ServerView) -> None:
    """Tell the virtual server's clients which of their lists changed: 2025-11-25 sessions on their
    standalone stream, 2026-07-28 clients on their `subscriptions/listen` streams. Under a policy each
    caller is told only of changes to what it is shown (a new policy may change that alone)."""
    if before is None:
        return
    policy_changed = before.spec.policy != after.spec.policy
    changed = [
        (kinds, send, event)
        for kinds, send, event in _CHANGE_EVENTS
        if policy_changed or any(before.lists.get(k) != after.lists.get(k) for k in kinds)
    ]
    for kinds, _, event in changed:
        # Every subscriber of a front's bus is a CallerBus, which unwraps this before the SDK sees it.
        await front.bus.publish(ListChange(event, kinds, before, after))  # type: ignore[arg-type]
    for connection in list(front.connections) if changed else ():
        if not connection.has_standalone_channel:
            continue
        caller = front.callers.get(connection)
        for kinds, send, _ in changed:
            if (before.spec.policy is not None or after.spec.policy is not None) and not seen_changed(
                kinds, before, after, caller or Caller()
            ):
                continue
            try:
                await getattr(connection, send)()
            except Exception:
                log.debug("could not notify a client of %s", after.name, exc_info=True)
                front.connections.discard(connection)
                break
