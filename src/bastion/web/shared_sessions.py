"""2025-11-25 sessions shared across replicas: each session's record is written to the session store
when the SDK accepts `initialize` and when its log level or subscriptions change; a replica handed a
session id it does not hold restores the session from the record (same id, initialized, same client,
log level and subscriptions) and serves it as its own.

Subscriptions: the record keeps the session's list of subscribed URIs for the session's life. Each
replica that serves the session (restores it, or hears of a change on the feed) watches those URIs on
its own upstream connections and counts its interest there; its copy of the session ending, however
it ends (idle here, deleted or revoked on any replica, the record gone), releases that interest on
this replica only (web/resource_updates.py), while the record keeps the list for a replica that
serves the session next.

A replica that holds a session costs no store round trip per request: it checks the caller's token
hash locally and refreshes the record's idle TTL at most every `touch_every` seconds. Changes made
through another replica arrive on the store's change feed. Server-to-client requests meant for the
session's GET stream travel (through the store's relay) to the replica holding that stream, and the
client's answer, wherever it lands, back to the replica that asked.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext
from mcp.server.auth.provider import AccessToken
from mcp.server.connection import Connection
from mcp_types import (
    InitializeRequestParams,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from bastion.core.compose import ServerView
from bastion.core.errors import BastionError
from bastion.core.ports import ResourceSubscriber, SessionKey, SessionRecord, SessionStore
from bastion.pipeline.authz import caller_of
from bastion.pipeline.context import Principal
from bastion.pipeline.route import resource_for
from bastion.store.sessions.keys import SessionKeys
from bastion.web.json_depth import loads
from bastion.web.mcp_front import Front, Held, Watch
from bastion.web.relay import LOG_LEVEL_STATE, session_log_level
from bastion.web.scope import principal_of
from bastion.web.session_manager import session_not_found, session_owner, store_unavailable

log = logging.getLogger("bastion.sessions")

_RELAY = b"bastion/session-relay"
# Requests that change what the record holds.
RECORDED_METHODS = frozenset({"initialize", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})


def authorization(headers: Any) -> str | None:
    """The Authorization header from ASGI scope headers (a list of byte pairs) or a Starlette Headers."""
    if isinstance(headers, list):
        return next((v.decode("latin-1") for k, v in headers if k == b"authorization"), None)
    value = headers.get("authorization")
    return value if isinstance(value, str) else None


class SharedSessions:
    """This replica's side of the shared 2025-11-25 sessions (see the module docstring)."""

    def __init__(
        self,
        store: SessionStore,
        keys: SessionKeys,
        view_of: Callable[[str], ServerView | None],
        subscriber: ResourceSubscriber | None,
        idle_ttl: float,
    ) -> None:
        self._store = store
        self._keys = keys
        self._view_of = view_of
        self._subscriber = subscriber
        self._touch_every = min(60.0, idle_ttl / 4)
        self._addresses: dict[str, tuple[weakref.ref[Front], str]] = {}

    @property
    def replicated(self) -> bool:
        """Whether another replica may hold a session's GET stream (and take what is relayed to it)."""
        return self._store.replicated

    async def admit(self, front: Front, session_id: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Before the SDK sees a request naming `session_id`: restore the session here if another
        replica holds it; False when the request was answered (someone else's session: 404)."""
        key = self.key_of(session_id, scope)
        held = front.held.get(session_id)
        if held is not None and front.manager.holds(session_id):
            if not hmac.compare_digest(held.key.token_hash, key.token_hash):
                await session_not_found(scope, receive, send)
                return False
            await self._touch(held)
            return True
        if front.manager.holds(session_id):
            return True  # opened here while the store was unreachable: served as a local session
        try:
            async with front.restoring:
                if not front.manager.holds(session_id):
                    await self._restore(front, key, principal_of(scope), session_owner(scope))
        except Exception as exc:  # noqa: BLE001 - the store unreachable: said without details
            log.warning("could not load a session record (%s)", type(exc).__name__)
            await store_unavailable(scope, receive, send)
            return False
        return True

    def key_of(self, session_id: str, scope: Scope) -> SessionKey:
        """The key of `session_id` for the request's caller: its OAuth grant when the edge verified
        one (a refreshed access token keeps its session), else its credential itself."""
        principal = principal_of(scope)
        grant = principal.oauth_grant if principal is not None else None
        return self._keys.key_for(session_id, authorization(scope["headers"]), grant)

    def bind_owner(self, scope: Scope) -> None:
        """Name the request's caller (its credential, or the OAuth grant behind it) as the SDK's
        authenticated user: the session manager binds a session to the caller that opened (or
        restored) it and answers anyone else 404."""
        tag = self.key_of("", scope).token_hash
        scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=tag, scopes=[]))

    async def _touch(self, held: Held) -> None:
        now = time.monotonic()
        if now - held.touched < self._touch_every:
            return
        held.touched = now
        try:
            await self._store.touch(held.key)
        except Exception as exc:  # noqa: BLE001 - the session is served here; the refresh can wait
            log.warning("could not refresh a session record (%s)", type(exc).__name__)

    async def _restore(
        self, front: Front, key: SessionKey, principal: Principal | None, owner: AuthorizationContext | None
    ) -> None:
        record = await self._store.load(key)
        if record is None or record.server != front.name:
            return  # the SDK answers 404: the client initializes a new session
        try:
            params = InitializeRequestParams.model_validate(
                {
                    "protocolVersion": record.protocol_version,
                    "capabilities": record.capabilities,
                    "clientInfo": record.client_info,
                },
                by_name=False,
            )
        except ValidationError:
            return

        def prepare(connection: Connection) -> None:
            connection.client_params = params
            connection.protocol_version = record.protocol_version
            connection.initialized.set()
            front.manager.spread_ids(key.session_id)
            if record.log_level is not None:
                connection.state[LOG_LEVEL_STATE] = record.log_level

        connection = await front.manager.restore(key.session_id, prepare, owner)
        if connection is None:
            return
        # The restoring request presented the session's own credential or grant (the key is made from it).
        front.remember(connection, record.owner, caller_of(principal) if principal is not None else None)
        self._hold(front, key, record)
        await self._subscribe(front, connection, record.subscriptions, ())
        log.debug("restored a session from the shared store")

    def _hold(self, front: Front, key: SessionKey, record: SessionRecord) -> None:
        held = front.held.get(key.session_id)
        if held is not None:
            held.record = record
            return
        if len(front.held) % 256 == 0:
            # Sessions that ended here (idle, deleted) are dropped now and then, not on every request.
            front.held = {sid: h for sid, h in front.held.items() if front.manager.holds(sid)}
            self._addresses = {a: w for a, w in self._addresses.items() if _still_held(*w)}
        front.held[key.session_id] = Held(key, record, time.monotonic())
        self._addresses[self._store.address(key)] = (weakref.ref(front), key.session_id)

    async def recorded(
        self,
        front: Front,
        method: str,
        connection: Connection,
        *,
        params: Any,
        result: Any,
        scope: Scope,
        owner: str | None,
    ) -> None:
        """After the SDK served `method` (one of RECORDED_METHODS) on a session: store what changed."""
        session_id = connection.session_id
        if session_id is None:
            return
        now = time.time()
        if method == "initialize":
            if not isinstance(params, Mapping) or not isinstance(result, Mapping) or "protocolVersion" not in result:
                return  # refused: nothing was established
            key = self.key_of(session_id, scope)
            front.manager.spread_ids(session_id)
            record = SessionRecord(
                server=front.name,
                protocol_version=str(result["protocolVersion"]),
                client_info=dict(params.get("clientInfo") or {}),
                capabilities=dict(params.get("capabilities") or {}),
                owner=owner,
                created=now,
                last_seen=now,
            )
        else:
            held = front.held.get(session_id)
            if held is None:
                return
            key = held.key
            record = dataclasses.replace(
                held.record,
                log_level=session_log_level(connection.state),
                subscriptions=_subscriptions_of(front, connection),
                last_seen=now,
            )
        self._hold(front, key, record)
        await self._store.save(key, record)

    async def ended(self, front: Front, session_id: str) -> None:
        """The client deleted the session here: gone on every replica."""
        if front.manager.holds(session_id):
            return  # the DELETE was refused
        held = front.held.pop(session_id, None)
        if held is None:
            return
        try:
            await self._store.delete(held.key)
        except Exception as exc:  # noqa: BLE001 - ended here; elsewhere it expires when idle
            log.warning("could not delete a session record (%s)", type(exc).__name__)

    async def on_change(self, address: str) -> None:
        """Another replica changed or deleted a record: apply it to the session if it is held here."""
        where = self._addresses.get(address)
        front = where[0]() if where is not None else None
        if where is None or front is None:
            return
        session_id = where[1]
        held = front.held.get(session_id)
        owner = front.owners.get(session_id)
        connection = owner.connection() if owner is not None else None
        if held is None or connection is None or not front.manager.holds(session_id):
            return
        record = await self._store.load(held.key)
        if record is None:
            front.held.pop(session_id, None)
            await front.manager.end(session_id)
            return
        if record == held.record:
            return  # our own write
        before = _subscriptions_of(front, connection)
        if record.log_level is None:
            connection.state.pop(LOG_LEVEL_STATE, None)
        else:
            connection.state[LOG_LEVEL_STATE] = record.log_level
        held.record = record
        await self._subscribe(front, connection, record.subscriptions, before)

    async def relaying(self, front: Front, session_id: str, replayed: Receive) -> Receive:
        """A POST on its way to the SDK (body already read, `replayed`): relay it first if it is an
        answer meant for another replica; the SDK still sees the body."""
        first = await replayed()
        if first["type"] == "http.request" and not first.get("more_body", False):
            await self.relay_answer(front, session_id, first.get("body", b""))
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return first
            return await replayed()

        return receive

    async def relay_answer(self, front: Front, session_id: str, body: bytes) -> None:
        """A client POSTed `body` on a session held here: if it answers a request this replica did
        not send (another replica did), relay it to them all; the one that asked takes it."""
        held = front.held.get(session_id)
        if held is None or not body.lstrip().startswith(b"{"):
            return
        try:
            message = loads(body)
        except ValueError:
            return
        if not isinstance(message, dict) or "method" in message or not ({"result", "error"} & message.keys()):
            return
        owner = front.owners.get(session_id)
        connection = owner.connection() if owner is not None else None
        if connection is None or front.manager.awaits_response(session_id, message.get("id")):
            return  # answered here, by the SDK as usual
        await self._relay(held, {"message": message})

    async def forward(self, front: Front, session_id: str, message: JSONRPCMessage, event_id: str) -> None:
        """A server-to-client request for the session's GET stream, which another replica holds."""
        held = front.held.get(session_id)
        if held is not None:
            dumped = jsonrpc_message_adapter.dump_python(message, by_alias=True, mode="json", exclude_unset=True)
            await self._relay(held, {"message": dumped, "event_id": event_id})

    async def _relay(self, held: Held, envelope: dict[str, Any]) -> None:
        sealed = self._keys.seal(held.key, _RELAY, json.dumps(envelope, separators=(",", ":")).encode())
        try:
            await self._store.relay(self._store.address(held.key), sealed)
        except Exception as exc:  # noqa: BLE001 - the asking replica times the question out
            log.warning("could not relay a session message (%s)", type(exc).__name__)

    async def on_relayed(self, address: str, sealed: bytes) -> None:
        """Another replica relayed a session message: an answer goes to the question this replica
        asked, a request to the GET stream this replica holds; anything else is not for here."""
        where = self._addresses.get(address)
        front = where[0]() if where is not None else None
        held = front.held.get(where[1]) if where is not None and front is not None else None
        if front is None or held is None:
            return
        session_id = held.key.session_id
        owner = front.owners.get(session_id)
        connection = owner.connection() if owner is not None else None
        plain = self._keys.open(held.key, _RELAY, sealed)
        if connection is None or plain is None:
            return
        try:
            envelope = json.loads(plain)
            message = jsonrpc_message_adapter.validate_python(envelope["message"], by_name=False)
        except (ValueError, KeyError, TypeError, ValidationError):
            return
        if isinstance(message, JSONRPCRequest):
            event_id = envelope.get("event_id")
            await front.manager.to_stream(session_id, message, event_id if isinstance(event_id, str) else None)
        elif isinstance(message, JSONRPCResponse | JSONRPCError) and front.manager.awaits_response(session_id, message.id):
            await front.manager.deliver(session_id, message)

    async def _subscribe(
        self, front: Front, connection: Connection, wanted: tuple[str, ...], had: tuple[str, ...]
    ) -> None:
        """Bring the session's resource subscriptions here from `had` to `wanted`."""
        view = self._view_of(front.name)
        for uri in set(wanted) ^ set(had):
            watchers = front.resource_subs.setdefault(uri, weakref.WeakKeyDictionary())
            adding = uri in wanted
            watch = watchers.pop(connection, None)
            if view is None:
                continue
            try:
                upstream = resource_for(view, uri).upstream if adding else None
            except BastionError:
                continue  # the resource left the server since
            if upstream is not None:
                # Delivered only while the policy lets the session's owner read it (see fan_out).
                watchers[connection] = Watch(upstream, front.caller_of(connection))
            if self._subscriber is None:
                continue
            if upstream is not None:
                try:
                    await self._subscriber.subscribe(upstream, uri)
                except BaseException:
                    watchers.pop(connection, None)  # not counted: its end must not give back another's
                    raise
            elif watch is not None:
                await self._subscriber.unsubscribe(watch.upstream, uri)


def _subscriptions_of(front: Front, connection: Connection) -> tuple[str, ...]:
    return tuple(sorted(uri for uri, watchers in front.resource_subs.items() if connection in watchers))


def _still_held(front_ref: weakref.ref[Front], session_id: str) -> bool:
    front = front_ref()
    return front is not None and session_id in front.held
