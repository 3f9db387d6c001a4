"""The MCP side of every virtual server: one SDK `Server` per virtual server, serving
Streamable HTTP (2026-07-28 and 2025-11-25 on one URL) and the old HTTP+SSE transport.

Handlers are thin: they hand the raw params to the shared pipeline and return its raw result.
Legacy connections are remembered (weakly) so list changes reach them as notifications.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import anyio
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.caching import CacheHint
from mcp.server.connection import Connection
from mcp.server.models import InitializationOptions
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_TIMEOUT
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    NotificationParams,
    RequestId,
    RequestParams,
    SetLevelRequestParams,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from bastion import __version__
from bastion.core.compose import ServerView
from bastion.core.errors import BastionError, TooManyRequests
from bastion.core.ports import CallHooks, ResourceSubscriber
from bastion.core.snapshot import Snapshot
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.authz import caller_of
from bastion.pipeline.base import Next
from bastion.pipeline.context import CallContext
from bastion.pipeline.route import SERVED_METHODS
from bastion.pipeline.tracing import trace_headers
from bastion.tasks import TaskRunner
from bastion.web.bridge import capabilities_of, with_capabilities
from bastion.web.caller_roots import ROOTS_CHANGED, CallerRoots, roots_changed_handler
from bastion.web.errors import to_mcp_error
from bastion.web.fast_stream import RETRY_MS
from bastion.web.mcp_fast import (
    CACHE_HINTED_METHODS,
    Posted,
    guarded_body,
    refuse_duplicate,
    refused_request_id,
    replayed,
    request_id_of,
    serve_fast,
    serve_resume,
)
from bastion.web.mcp_front import Front, notify_changes
from bastion.web.refused_streams import EVERY_STREAM, StreamRechecks
from bastion.web.relay import call_hooks, set_log_level
from bastion.web.resource_updates import SessionWatcher, fan_out, release_watches, stream_listener
from bastion.web.scope import PRINCIPAL_SCOPE_KEY, bound_holder, credential_of, principal_of
from bastion.web.session_bounds import SessionBounds
from bastion.web.session_link import HELD_BY_POST, RequestIds, serve_session, session_connection
from bastion.web.session_logs import redact_session_ids
from bastion.web.session_manager import (
    EventsFor,
    SessionManager,
    invalid_request,
    mcp_headers,
    repeated_header,
    too_many,
)
from bastion.web.shared_sessions import RECORDED_METHODS, SharedSessions

log = logging.getLogger("bastion.mcp")

__all__ = ["PRINCIPAL_SCOPE_KEY", "McpFront"]
_CACHE_HINTS: dict[Any, CacheHint] = {m: CacheHint(ttl_ms=0, scope="private") for m in CACHE_HINTED_METHODS}
_NO_SECURITY = TransportSecuritySettings(enable_dns_rebinding_protection=False)
# Which session a request names, in which era, and whose credential: each must be there once, in
# either era (else B was admitted to its own session by one layer and served in A's by the next).
_ROUTING_HEADERS = (b"mcp-session-id", b"authorization", b"mcp-protocol-version")
_SSE_SESSION = re.compile(rb"session_id=([0-9a-f]{32})")
"""The session id in an HTTP+SSE stream's `endpoint` event (the URL its client POSTs to)."""


class AnyParams(RequestParams):
    """Accept any params: the pipeline reads the raw dict, so validating twice is waste."""

    model_config = ConfigDict(extra="allow")


class VirtualMcpServer(Server[Any]):
    """An SDK server that always advertises list_changed (Bastion sends it on every change)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = notification_options or NotificationOptions(True, True, True)
        return super().create_initialization_options(options, experimental_capabilities, extensions)


def _error_triple(exc: BastionError) -> tuple[int, str, Any]:
    error = to_mcp_error(exc).error
    return error.code, error.message, error.data


def _address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _legacy_session_id(scope: Scope) -> str | None:
    """The Mcp-Session-Id of a 2025-11-25 request (no version header, or a handshake-era one)."""
    version, session_id = mcp_headers(scope)
    if session_id is None or (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS):
        return None
    return session_id


def _modern(scope: Scope) -> bool:
    """Whether the request's MCP-Protocol-Version names a 2026-07-28-era version."""
    return mcp_headers(scope)[0] in MODERN_PROTOCOL_VERSIONS


def _owned(scope: Scope) -> Scope:
    """The scope with its principal as the SDK's authenticated user: the SDK's HTTP+SSE transport
    binds a session to the user that opened its stream, and answers a POST from anyone else
    exactly as for a session that does not exist (404)."""
    principal = principal_of(scope)
    owner = principal.id if principal is not None else ""
    scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=owner, scopes=[]))
    return scope


class McpFront:
    def __init__(
        self,
        pipeline: Next,
        runner: TaskRunner,
        snapshot: Callable[[], Snapshot],
        max_body_bytes: int,
        events: EventsFor | None = None,
        subscriber: ResourceSubscriber | None = None,
        shared: SharedSessions | None = None,
        authenticator: Authenticator | None = None,
        session_idle: float | None = DEFAULT_SESSION_IDLE_TIMEOUT,
        sessions_per_caller: int | None = None,
        sessions_per_server: int = DEFAULT_MAX_SESSIONS,
        roots: CallerRoots | None = None,
    ) -> None:
        """`authenticator` re-checks open streams (one that records no use: a re-check is not a call);
        a 2025-11-25 session ends here after `session_idle` seconds unused (None: never); one caller
        holds at most `sessions_per_caller` of them across servers (None: no bound), one server
        `sessions_per_server`, which must be more; `roots` is told of a caller's changed roots."""
        if sessions_per_caller is not None and sessions_per_caller >= sessions_per_server:
            raise ValueError("sessions_per_caller must be less than sessions_per_server: one caller could fill a server")
        self._pipeline = pipeline
        self._snapshot = snapshot
        self._runner = runner
        self._max_body = max_body_bytes
        self._fronts: dict[str, Front] = {}
        # Fronts of deleted servers, until their sessions have wound down (weakly held).
        self._retired: weakref.WeakValueDictionary[str, Front] = weakref.WeakValueDictionary()
        self._lock = anyio.Lock()
        self._events = events
        self._subscriber = subscriber
        self._roots = roots
        self._shared = shared
        self._session_idle = session_idle
        self._bounds = SessionBounds(sessions_per_caller)
        self._sessions_per_server = sessions_per_server
        self._sse_requests: dict[str, tuple[str | None, RequestIds]] = {}
        """Open HTTP+SSE sessions (by the id their POSTs name): their owner's principal, and the ids of
        its requests in flight there."""
        self._rechecks = (
            StreamRechecks(lambda: [*self._fronts.values(), *self._retired.values()], authenticator, runner.spawn)
            if authenticator is not None
            else None
        )
        redact_session_ids()

    def known_servers(self) -> Mapping[str, ServerView]:
        return self._snapshot().servers

    def _front_of(self, name: str) -> Front:
        # A front is registered before its server can receive anything, and requests reach the
        # server only through it; one deleted mid-request is still the one the request came in on.
        front = self._fronts.get(name) or self._retired.get(name)
        assert front is not None, f"no front for {name!r}"
        return front

    def _make_server(self, name: str) -> VirtualMcpServer:
        pipeline = self._pipeline

        async def run(ctx: ServerRequestContext[Any], params: dict[str, Any], hooks: CallHooks | None) -> dict[str, Any]:
            # A message with no HTTP request behind it carries no credential: the pipeline refuses it.
            request = ctx.request
            credential = credential_of(request.scope) if isinstance(request, Request) else None
            call = CallContext(
                server=name,
                method=ctx.method,
                params=params,
                credential=credential,
                hooks=hooks,
                address=_address(request.scope) if isinstance(request, Request) else None,
                trace_headers=trace_headers(request.headers) if isinstance(request, Request) else None,
            )
            try:
                return await pipeline(call)
            except BastionError as exc:
                raise to_mcp_error(exc) from None

        async def handle(ctx: ServerRequestContext[Any], _params: AnyParams) -> dict[str, Any]:
            params = dict(ctx.params or {})
            if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                params = with_capabilities(params, capabilities_of(session_connection()))
            result = await run(ctx, params, call_hooks(ctx))
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and "resultType" not in result:
                # A legacy upstream's result, or a list served locally: 2026-07-28 requires the tag.
                result = {**result, "resultType": "complete"}
            return result

        def input_schema(tool: str) -> dict[str, Any] | None:
            # Mcp-Param-* header checks need the tool's schema; without this hook the SDK would
            # run the whole tools/list handler on every 2026-07-28 tools/call.
            view = self._snapshot().servers.get(name)
            item = view.tools.get(tool) if view is not None else None
            schema = item.definition.get("inputSchema") if item is not None else None
            return schema if isinstance(schema, dict) else None

        server = VirtualMcpServer(
            "bastion",
            version=__version__,
            title=f"Bastion virtual server {name}",
            cache_hints=_CACHE_HINTS,
            get_tool_input_schema=input_schema,
        )
        for method in sorted(SERVED_METHODS):
            server.add_request_handler(method, AnyParams, handle)
        server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_log_level)
        # Subscriptions and listen streams pass the pipeline like calls; only the caller's side is
        # kept here. Without upstream subscriptions (`bastion wrap`) only listen is served.

        async def watch(ctx: ServerRequestContext[Any], _params: Any) -> dict[str, Any]:
            watcher = SessionWatcher(self._front_of(name), session_connection())
            return await run(ctx, dict(ctx.params or {}), CallHooks(watcher=watcher))

        async def listen(ctx: ServerRequestContext[Any], _params: Any) -> dict[str, Any]:
            view_of = lambda: self._snapshot().servers.get(name)  # noqa: E731
            return await run(ctx, dict(ctx.params or {}), CallHooks(listen=stream_listener(self._front_of(name), view_of, ctx)))

        if self._subscriber is not None:
            server.add_request_handler("resources/subscribe", SubscribeRequestParams, watch)
            server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, watch)
        server.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listen)
        if self._roots is not None:
            handler = roots_changed_handler(self._roots, partial(self._stream_open, name))
            server.add_notification_handler(ROOTS_CHANGED, NotificationParams, handler)

        async def remember_connection(ctx: ServerRequestContext[Any], call_next: Any) -> Any:
            # Every message of a session passes here, `initialize` included, so a client that has
            # only connected is told of list changes too. Stateless requests have no standalone
            # channel to notify and are not kept (their connection lives for one request).
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                return await call_next(ctx)
            request = ctx.request
            principal = principal_of(request.scope) if isinstance(request, Request) else None
            owner = principal.id if principal is not None else None
            connection = session_connection()
            front = self._front_of(name)
            front.remember(connection, owner, caller_of(principal) if principal is not None else None)
            if connection.session_id is not None and isinstance(request, Request):
                front.guard(connection, credential_of(request.scope), partial(self._end_session, name))
            result = await call_next(ctx)
            shared = self._shared if ctx.method in RECORDED_METHODS else None
            # Only Streamable HTTP sessions are shared: an HTTP+SSE session lives on its stream.
            if shared is not None and isinstance(request, Request) and request.url.path.endswith("/mcp"):
                try:
                    await shared.recorded(
                        self._front_of(name),
                        ctx.method,
                        connection,
                        params=ctx.params,
                        result=result,
                        scope=request.scope,
                        owner=owner,
                    )
                except Exception as exc:  # noqa: BLE001 - served here all the same; other replicas won't know it
                    log.warning("could not store a session record (%s)", type(exc).__name__)
            return result

        # Bastion logs and times requests in its own pipeline; this is the only middleware.
        server.middleware = [remember_connection]
        return server

    def _stream_open(self, name: str, connection: Connection) -> bool:
        """Whether the session can be sent a request outside any call here: its GET stream is
        connected to this replica (an HTTP+SSE session's stream is the session itself)."""
        session_id = connection.session_id
        return session_id is None or self._front_of(name).manager.streams_here(session_id)

    async def _front(self, name: str) -> Front:
        front = self._fronts.get(name)
        if front is not None:
            return front
        async with self._lock:
            front = self._fronts.get(name)
            if front is None:
                bus = InMemorySubscriptionBus()
                server = self._make_server(name)
                shared = self._shared
                created: Front  # the front below: its sessions' ends release what they watched on it

                async def ended(connection: Connection) -> None:
                    await release_watches(created, connection, self._subscriber)

                manager = SessionManager(
                    app=server,
                    security_settings=_NO_SECURITY,
                    max_request_body_size=self._max_body,
                    retry_interval=RETRY_MS,
                    events_for=self._events,
                    forward=None if shared is None or not shared.replicated else partial(self._forward, shared, name),
                    on_end=ended,
                    idle_timeout=self._session_idle,
                    max_sessions=self._sessions_per_server,
                    bounds=self._bounds,
                    on_close=None if shared is None else partial(self._closed, shared, name),
                )
                sse = SseServerTransport(
                    f"/servers/{name}/messages/", security_settings=_NO_SECURITY, max_request_body_size=self._max_body
                )
                front = created = Front(name=name, server=server, manager=manager, sse=sse, bus=bus)
                self._fronts[name] = front
                await self._runner.start(f"mcp-front:{name}", self._run_manager, front)
        return front

    async def _closed(self, shared: SharedSessions, name: str, session_id: str) -> None:
        """A session closed here for its caller's newer one: its record goes, so no replica restores it."""
        front = self._fronts.get(name) or self._retired.get(name)
        if front is not None:
            await shared.ended(front, session_id)

    async def _forward(self, shared: SharedSessions, name: str, session_id: str, message: Any, event_id: str) -> None:
        await shared.forward(self._front_of(name), session_id, message, event_id)

    @staticmethod
    async def _run_manager(front: Front, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with front.manager.run():
            task_status.started()
            await front.stop.wait()

    async def handle_streamable(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        # Refused whatever versions the copies name: one naming 2026-07-28 once switched this check off.
        if (repeated := repeated_header(scope, _ROUTING_HEADERS)) is not None:
            await invalid_request(f"Bad Request: more than one {repeated} header", scope, receive, send)
            return
        front = await self._front(name)
        if self._shared is not None and not _modern(scope):
            self._shared.bind_owner(scope)
        shared, session_id = self._shared, _legacy_session_id(scope)
        if shared is None or session_id is None:
            shared = session_id = None
        elif not await shared.admit(front, session_id, scope, receive, send):
            return  # answered: another caller's session
        elif not await front.manager.count_restored(session_id, scope, receive, send):
            return  # answered: restored here, but its caller is at its bound
        if session_id is not None:
            # Every request, fast-path calls too: a refreshed access token takes over the re-checks.
            self._guard_session(front, session_id, scope)
        if scope["method"] != "POST":
            if scope["method"] == "GET" and await serve_resume(scope, receive, send, front.legacy_session):
                return
            await front.manager.handle_request(scope, receive, send)
            if shared is not None and session_id is not None and scope["method"] == "DELETE":
                await shared.ended(front, session_id)
            return

        async def fallback(replayed: Receive) -> None:
            if shared is not None and session_id is not None:
                replayed = await shared.relaying(front, session_id, replayed)
            await front.manager.handle_request(scope, replayed, send)

        await serve_fast(
            name,
            self._pipeline,
            _error_triple,
            scope,
            receive,
            send,
            max_body=self._max_body,
            fallback=fallback,
            sessions=front.legacy_session,
            mirrored=lambda tool: tool in self._mirrored(name),
        )

    def _guard_session(self, front: Front, session_id: str, scope: Scope) -> None:
        """A session's GET stream may be the only thing of it served here (restored from the store);
        a fast-path call is not seen by the SDK's middleware, which guards the rest."""
        owner = front.owners.get(session_id)
        connection = owner.connection() if owner is not None else None
        if connection is not None:
            front.guard(connection, credential_of(scope), partial(self._end_session, front.name))

    async def _end_session(self, name: str, connection: Any) -> None:
        """End a 2025-11-25 session whose credential no longer admits it, on every replica."""
        front = self._fronts.get(name) or self._retired.get(name)
        session_id = getattr(connection, "session_id", None)
        if front is None or not isinstance(session_id, str):
            return
        await front.manager.end(session_id)
        if self._shared is not None:
            await self._shared.ended(front, session_id)

    def recheck(self, revoked: str = EVERY_STREAM) -> None:
        """`revoked` (a token or sign-in session id, `user:<id>`; by default, time) may refuse open
        streams' callers now: re-check those it concerns, in the background, and end the refused."""
        if self._rechecks is not None:
            self._rechecks.request(revoked)

    def _mirrored(self, name: str) -> frozenset[str]:
        view = self._snapshot().servers.get(name)
        return view.mirrored_tools if view is not None else frozenset()

    async def handle_sse(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        front = await self._front(name)
        server = front.server
        credential = credential_of(scope)
        ended = anyio.CancelScope()
        served: list[Connection] = []

        async def end(_connection: Any = None) -> None:
            ended.cancel()

        # The stream is the session: it takes a place in its server's table and counts against its
        # caller's bound, in use while it is open.
        if front.manager.full():
            await front.manager.refuse_full(scope, receive, send)
            return
        try:
            seat, victim = self._bounds.take(bound_holder(scope), end, busy=True)
        except TooManyRequests as exc:
            log.warning("refusing to open an HTTP+SSE stream: its caller is at its bound, every session in use")
            await too_many(exc, scope, receive, send)
            return

        principal = principal_of(scope)
        known: dict[str, Any] = {"owner": principal.id if principal is not None else None}

        def track() -> None:
            # Both the session's id (from its endpoint event) and its link (once served) are known.
            if "id" in known and "requests" in known:
                self._sse_requests[known["id"]] = (known["owner"], known["requests"])

        def ready(connection: Connection, link: Any) -> None:
            served.append(connection)
            front.guard(connection, credential, end)
            known["requests"] = link.requests
            track()

        async def watched(message: Message) -> None:
            # The endpoint event is the stream's first: nothing after it (an upstream's text) is read.
            if "looked" not in known and message["type"] == "http.response.body" and message.get("body"):
                known["looked"] = True
                found = _SSE_SESSION.search(message["body"])
                if found is not None:
                    known["id"] = found.group(1).decode()
                    track()
            await send(message)

        try:
            with front.manager.sse_stream():
                async with (
                    front.sse.connect_sse(_owned(scope), receive, watched) as (read, write),
                    server.lifespan(server) as state,
                ):
                    if victim is not None:
                        await self._bounds.close(victim)
                    # HTTP+SSE (2024-11-05) is a handshake-era transport: served as a 2025-11-25 session.
                    options = server.create_initialization_options()
                    with ended:
                        await serve_session(server, read, write, lifespan_state=state, init_options=options, ready=ready)
                    if ended.cancel_called:
                        await write.aclose()  # the event stream ends cleanly: the client is told it is over
        finally:
            if "id" in known:
                self._sse_requests.pop(known["id"], None)
            if victim is not None:
                self._bounds.give_back(victim)  # the stream did not open: a no-op once the victim is closed
            self._bounds.leave(seat)
            # The session lives on its stream: gone (client away, credential refused), so are its subscriptions.
            if served:
                await release_watches(front, served[0], self._subscriber)

    async def handle_sse_post(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        body = await guarded_body(receive, send, self._max_body)  # the size and depth rules, as on /mcp
        if body is None:
            return
        posted = Posted(body)  # decoded once, for both looks below
        if await refused_request_id(posted, send):
            return
        front = await self._front(name)
        requests, request_id = self._sse_request(scope, posted)
        if requests is None or request_id is None:
            await front.sse.handle_post_message(_owned(scope), replayed(body, receive), send)
            return
        if not requests.claim(request_id):
            await refuse_duplicate(send, request_id)
            return
        accepted = False

        async def watched(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "http.response.start":
                accepted = message["status"] == 202
            await send(message)

        scope[HELD_BY_POST] = True  # handed on (202), the request's dispatcher releases it once answered
        try:
            await front.sse.handle_post_message(_owned(scope), replayed(body, receive), watched)
        finally:
            if not accepted:
                requests.release(request_id)

    def _sse_request(self, scope: Scope, posted: Posted) -> tuple[RequestIds | None, RequestId | None]:
        """The ids in flight on the HTTP+SSE session a POST names, and its request's id, when the POST is
        its owner's (anyone else's is answered as for no session, by the SDK)."""
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_id")
        try:
            session_id = UUID(hex=values[0]).hex if values else None
        except ValueError:
            return None, None  # the SDK answers it
        found = self._sse_requests.get(session_id) if session_id is not None else None
        principal = principal_of(scope)
        if found is None or found[0] != (principal.id if principal is not None else None):
            return None, None
        return found[1], request_id_of(posted)

    async def on_change(self, old: Snapshot, new: Snapshot) -> None:
        """Tell connected legacy clients which lists changed; close fronts of deleted servers."""
        for name, front in list(self._fronts.items()):
            view = new.servers.get(name)
            if view is None:
                self._retired[name] = self._fronts.pop(name)
                front.close_listeners()
                front.stop.set()
                continue
            before = old.servers.get(name)
            await notify_changes(front, before, view)

    async def resource_updated(self, upstream: str, uri: str) -> None:
        """An upstream resource changed: tell the clients subscribed to it, on every virtual server."""
        await fan_out(self._fronts, self._snapshot().servers, upstream, uri)

    def session_figures(self) -> tuple[dict[str, int], int]:
        """Open 2025-11-25 sessions per virtual server, and open GET streams, on this replica."""
        sessions: dict[str, int] = {}
        streams = 0
        for name, front in self._fronts.items():
            count, open_streams = front.manager.session_counts()
            sessions[name] = count
            streams += open_streams
        return sessions, streams

    async def aclose(self) -> None:
        for front in self._fronts.values():
            front.close_listeners()
            front.stop.set()
        self._fronts.clear()
