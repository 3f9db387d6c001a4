"""The pool of supervised upstream connections: one shared per upstream (or one per user), and
callers' own sessions where a call's era holds caller context (core.upstream_sessions).

HTTP upstreams share one pooled httpx client (keep-alive connections); no request opens a
session or a client of its own.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import anyio
import httpx2
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bastion.core.errors import CredentialsUnavailable, UpstreamNotConnected, UpstreamUnavailable
from bastion.core.models import Discovery, OAuthClientCredentials, UpstreamSpec
from bastion.core.ports import AgentTaskHolders, AskCallback, CallHooks, UpstreamTokenStore
from bastion.core.upstream_sessions import ClientMode, askable, caller_key, choose_session, shared_mode
from bastion.outbound import Outbound
from bastion.tasks import TaskRunner
from bastion.upstream.a2a import A2aUpstream
from bastion.upstream.caller_http import CallerHttpSession
from bastion.upstream.caller_sessions import CallerSession, CallerSessions, Limits
from bastion.upstream.connection import NotificationHandler, ResourceUpdatedHandler, UpstreamConnection
from bastion.upstream.discovery import DiscoveryLimits, discover, storable
from bastion.upstream.guard import AddressGuard
from bastion.upstream.launch_guard import LaunchGuard
from bastion.upstream.oauth import BearerAuth, ClientCredentialsToken, TokenSource
from bastion.upstream.openapi import OpenApiUpstream
from bastion.upstream.per_user_auth import PerUserAuth, user_grant

log = logging.getLogger("bastion.upstream")
CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"

Key = tuple[str, str | None]
REQUEST_RESPONSE = frozenset({"openapi", "a2a"})
"""Transports that are not MCP sessions: each call is one HTTP exchange (REST APIs, A2A agents)."""


def no_cookies() -> CookieJar:
    """A jar that keeps nothing. These clients are shared by every caller (and per-user sessions),
    so a cookie an upstream sets in one user's call must never ride along on another's; a stateful
    upstream carries its session in Mcp-Session-Id, not in cookies."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _declared(params: dict[str, Any] | None) -> dict[str, Any]:
    """The capabilities the caller declared (every call carries them in `_meta`, both eras)."""
    meta = (params or {}).get("_meta")
    caps = meta.get(CAPABILITIES_META) if isinstance(meta, dict) else None
    return dict(caps) if isinstance(caps, dict) else {}


def _check_credentials(spec: UpstreamSpec) -> None:
    """An upstream whose sealed credentials did not open is never connected (not even without them)."""
    if spec.credentials_error is not None:
        raise CredentialsUnavailable(f"upstream {spec.name!r} is unavailable: {spec.credentials_error}")


class UpstreamPool:
    """Owns every UpstreamConnection. Connections start on registration or first use."""

    def __init__(
        self,
        runner: TaskRunner,
        *,
        agent_tasks: AgentTaskHolders,
        on_notification: NotificationHandler,
        on_resource_updated: ResourceUpdatedHandler | None = None,
        connect_timeout: float,
        outbound: Outbound,
        backoff_base: float = 0.5,
        per_user_idle: float = 600.0,
        launch_guard: LaunchGuard | None = None,
        user_tokens: UpstreamTokenStore | None = None,
        caller_limits: Limits | None = None,
        limits: DiscoveryLimits = DiscoveryLimits(),
        max_response_bytes: int = 8 * 1024 * 1024,
        agent_task_ttl: float = 7 * 24 * 3600.0,
    ) -> None:
        # Every client below comes from `outbound`: SSRF rules on the address connected to, no
        # redirects beyond the SDK's same-origin ones, and upstream answers read within the size caps.
        self._outbound = outbound
        self._guard = AddressGuard(outbound)
        self._limits = limits
        callers = caller_limits or Limits()
        self._callers = CallerSessions(runner, replace(callers, idle=per_user_idle))
        self._legacy_refused: set[str] = set()
        """Upstreams (auto era) that refused a 2025-11-25 handshake: their callers share the modern session."""
        self._launch_guard = launch_guard
        self._max_response = max_response_bytes
        # Upstreams that are not MCP servers (REST APIs described by OpenAPI): called per request.
        self._rest: dict[str, OpenApiUpstream | A2aUpstream] = {}
        # Which caller started each A2A task and conversation (every replica's pool sees the same).
        self._agent_tasks = agent_tasks
        self._agent_task_ttl = agent_task_ttl
        self._runner = runner
        self._on_notification = on_notification
        self._on_resource_updated = on_resource_updated
        self._resource_refs: Counter[tuple[str, str]] = Counter()
        self._connect_timeout = connect_timeout
        self._backoff_base = backoff_base
        self._per_user_idle = per_user_idle
        self._specs: dict[str, UpstreamSpec] = {}
        self._conns: dict[Key, UpstreamConnection] = {}
        self._lock = anyio.Lock()
        self.http = outbound.client(cookies=no_cookies())
        self._http_by_headers: dict[tuple[tuple[str, str], ...], httpx2.AsyncClient] = {}
        # Upstreams with OAuth: their token (shared by all their connections) and their own httpx client.
        self._bearers: dict[str, ClientCredentialsToken] = {}
        self._http_with_auth: dict[str, httpx2.AsyncClient] = {}
        # Per-user OAuth upstreams: each user's own token and client, keyed by the verified user id.
        self._per_user = PerUserAuth(user_tokens, self.http, outbound, timeout=connect_timeout, cookies=no_cookies)
        # The hot path to 2026-07-28 HTTP upstreams; keep-alive connections shared by all of them.
        self.fast_http = outbound.aiohttp_session(connect_timeout=connect_timeout)
        # Callers' own Streamable HTTP sessions: unbounded here (the session bounds limit them), since
        # a call waiting for its caller's answer holds a connection while the answer needs another.
        self._callers_http = outbound.aiohttp_session(connect_timeout=connect_timeout, limit=0, limit_per_host=0)

    def _bearer_for(self, spec: UpstreamSpec) -> ClientCredentialsToken | None:
        if not isinstance(spec.auth, OAuthClientCredentials):
            return None
        bearer = self._bearers.get(spec.name)
        if bearer is None:
            # Token requests go out on the plain shared client: never with the upstream's own headers.
            bearer = self._bearers[spec.name] = ClientCredentialsToken(
                spec.name, spec.auth, self.http, timeout=self._connect_timeout
            )
        return bearer

    def _http_for(self, spec: UpstreamSpec) -> httpx2.AsyncClient | None:
        if spec.transport != "streamable-http":
            return None
        bearer = self._bearer_for(spec)
        if bearer is not None:
            client = self._http_with_auth.get(spec.name)
            if client is None:
                client = self._http_with_auth[spec.name] = self._outbound.client(
                    headers=dict(spec.headers), auth=BearerAuth(bearer), cookies=no_cookies()
                )
            return client
        if not spec.headers:
            return self.http
        key = tuple(sorted(spec.headers.items()))
        client = self._http_by_headers.get(key)
        if client is None:
            client = self._outbound.client(headers=dict(spec.headers), cookies=no_cookies())
            self._http_by_headers[key] = client
        return client

    def _new_connection(
        self,
        spec: UpstreamSpec,
        user: str | None,
        mode: ClientMode | None = None,
        caller_capabilities: dict[str, Any] | None = None,
    ) -> UpstreamConnection:
        bearer: TokenSource | None = self._bearer_for(spec)
        http = self._http_for(spec) if caller_capabilities is None else None
        if user_grant(spec) is not None:
            bearer, http = self._per_user.source(spec, user), self._per_user.http(spec, user)
        return UpstreamConnection(
            spec,
            http_client=http,
            fast_http=self.fast_http,
            # A client per SSE session: a cookie lives in that one upstream session (sticky balancers).
            sse_client_factory=self._outbound.client_factory(),
            size_limits=(self._outbound.max_message_bytes, self._outbound.max_result_bytes),
            on_notification=self._on_notification,
            on_resource_updated=self._on_resource_updated,
            connect_timeout=self._connect_timeout,
            backoff_base=self._backoff_base,
            guard=self._guard,
            launch_guard=self._launch_guard,
            bearer=bearer,
            mode=mode or shared_mode(spec),
            caller_capabilities=caller_capabilities,
        )

    def _caller_session(self, spec: UpstreamSpec, user: str | None, mode: ClientMode, caps: dict[str, Any]) -> CallerSession:
        """A caller's own session: Bastion's lean one on Streamable HTTP, the SDK's on stdio and SSE."""
        if spec.transport != "streamable-http" or mode != "legacy":
            return self._new_connection(spec, user, mode, caps)
        return CallerHttpSession(
            self._callers_http,
            spec,
            runner=self._runner,
            caller_capabilities=caps,
            connect_timeout=self._connect_timeout,
            bearer=self._per_user.source(spec, user) if user_grant(spec) is not None else self._bearer_for(spec),
            guard=self._guard,
            size_limits=(self._outbound.max_message_bytes, self._outbound.max_result_bytes),
        )

    async def _start(self, key: Key, spec: UpstreamSpec) -> UpstreamConnection:
        conn = self._new_connection(spec, key[1])
        if key[1] is None:
            # A replaced connection (the upstream changed, or came back): what callers still watch is
            # subscribed on the new session as it opens, as after any reconnect.
            conn.resource_uris.update(uri for (name, uri), n in self._resource_refs.items() if name == key[0] and n > 0)
        self._conns[key] = conn
        await self._runner.start(f"upstream:{key[0]}:{key[1] or '*'}", conn.run)
        return conn

    async def open(self, spec: UpstreamSpec) -> UpstreamConnection | None:
        """Start the shared connection of a new or changed upstream and wait for its first attempt
        (a REST upstream has none: it is only known)."""
        await self.close(spec.name)
        _check_credentials(spec)
        if spec.transport in REQUEST_RESPONSE:
            self.adopt([spec])
            return None
        if user_grant(spec) is not None:
            self._per_user.source(spec, None)  # raises: a per-user OAuth upstream has no shared connection
        async with self._lock:
            self._specs[spec.name] = spec
            conn = await self._start((spec.name, None), spec)
        # The attempt is bounded by the connect timeout; closing a failed child can take a few s more.
        with anyio.move_on_after(self._connect_timeout + 10):
            await conn.wait_first_attempt()
        return conn

    async def discover(self, spec: UpstreamSpec) -> Discovery:
        """Open (or reopen) `spec` and list everything it offers; raises if it cannot be reached."""
        if self._launch_guard is not None:
            await self._launch_guard.check(spec)  # refused before anything runs: the caller's 403
        if self._guard is not None:
            await self._guard.check(spec)  # a refused address is the caller's 403, not a 502
        if spec.transport in REQUEST_RESPONSE:
            await self.close(spec.name)
            _check_credentials(spec)
            self.adopt([spec])
            return storable(await self._rest_for(spec).discover(), spec.name)
        if user_grant(spec) is not None:
            # Nothing to connect as yet: each user's connection opens on their first call, and the
            # catalog is discovered over the first user's (see Gateway.refresh_upstream).
            await self.close(spec.name)
            self.adopt([spec])
            return Discovery(items=())
        conn = await self.open(spec)
        assert conn is not None, "only REST upstreams have no connection"
        if conn.client is None:
            reason = conn.failure or "it did not answer in time"
            await self.close(spec.name)
            raise UpstreamUnavailable(f"could not connect to upstream {spec.name!r}: {reason}")
        return storable(await discover(conn, timeout=self._connect_timeout, limits=self._limits), spec.name)

    async def rediscover(self, name: str, user: str | None = None) -> Discovery:
        """Discover over the shared connection; for a per-user OAuth upstream, over `user`'s (or, with
        none given, any user's live one): the catalog is the same for everyone, the calls are not."""
        spec = self._specs.get(name)
        if spec is not None and spec.transport in REQUEST_RESPONSE:
            _check_credentials(spec)
            return storable(await self._rest_for(spec).rediscover(), name)
        per_user_oauth = spec is not None and user_grant(spec) is not None
        if per_user_oauth and user is None:
            live = [c for k, c in self._conns.items() if k[0] == name and k[1] is not None and c.client is not None]
            if not live:
                raise UpstreamNotConnected(f"no user is connected to upstream {name!r} right now")
            return storable(await discover(live[0], timeout=self._connect_timeout, limits=self._limits), name)
        conn = await self._get(name, user if per_user_oauth else None)
        return storable(await discover(conn, timeout=self._connect_timeout, limits=self._limits), name)

    async def forget_user(self, name: str, user: str) -> None:
        """A user disconnected from upstream `name`: stop their connection and drop their token."""
        async with self._lock:
            conn = self._conns.pop((name, user), None)
        if conn is not None:
            await conn.stop()
        await self._per_user.forget(name, user)

    async def forget_accounts(self, name: str) -> int:
        """Upstream `name` now sends credentials somewhere else: every user's connection to it stopped
        and every user's stored tokens for it deleted (each connects again); how many were stored."""
        async with self._lock:
            conns = [self._conns.pop(key) for key in [k for k in self._conns if k[0] == name and k[1] is not None]]
        for conn in conns:
            await conn.stop()
        await self._callers.close(name)  # callers' own sessions hold their token sources too
        return await self._per_user.delete_stored(name)

    def adopt(self, specs: Sequence[UpstreamSpec]) -> None:
        """Know these upstreams (on start); connections open lazily or via `ensure`."""
        for spec in specs:
            self._specs[spec.name] = spec

    def spec_of(self, name: str) -> UpstreamSpec | None:
        """The spec this pool connects `name` with, if it knows the upstream."""
        return self._specs.get(name)

    async def ensure(self, name: str) -> UpstreamConnection | None:
        """The shared connection of `name`, connecting it; None for a REST upstream (no connection)."""
        spec = self._specs.get(name)
        if spec is not None and spec.transport in REQUEST_RESPONSE:
            return None
        return await self._get(name, None)

    def _rest_for(self, spec: UpstreamSpec) -> OpenApiUpstream | A2aUpstream:
        rest = self._rest.get(spec.name)
        if rest is not None and rest.spec != spec and rest.spec.model_copy(update={"destinations": spec.destinations}) == spec:
            rest.spec = spec  # only the approved origins changed: what it discovered stays, held to them
        if rest is None or rest.spec != spec:
            bearer = self._bearer_for(spec)

            async def bearer_for(user: str | None) -> str | None:
                if user_grant(spec) is not None:
                    return await self._per_user.source(spec, user).token()
                return await bearer.token() if bearer is not None else None

            if spec.transport == "a2a":
                rest = A2aUpstream(
                    spec, self.http, self._guard, bearer_for, timeout=self._connect_timeout,
                    max_response_bytes=self._max_response, holders=self._agent_tasks, hold_for=self._agent_task_ttl,
                )
            else:  # as many operations as an MCP upstream may list tools
                rest = OpenApiUpstream(
                    spec, self.http, self._guard, bearer_for, timeout=self._connect_timeout,
                    max_response_bytes=self._max_response, max_operations=self._limits.max_items,
                )
            self._rest[spec.name] = rest
        return rest

    async def _get(self, name: str, user: str | None) -> UpstreamConnection:
        spec = self._specs.get(name)
        if spec is None or not spec.enabled:
            raise UpstreamUnavailable(f"upstream {name!r} is not registered or is disabled")
        _check_credentials(spec)
        key: Key = (name, user if spec.isolation == "per_user" else None)
        conn = self._conns.get(key)
        if conn is not None:
            return conn
        if user_grant(spec) is not None:
            # Before connecting: a user who has not connected (or whose token does not open) is told so.
            await self._per_user.source(spec, key[1]).token()
        async with self._lock:
            conn = self._conns.get(key)
            if conn is None:
                conn = await self._start(key, spec)
        return conn

    async def request(
        self,
        upstream: str,
        method: str,
        params: dict[str, Any] | None,
        *,
        user: str | None,
        timeout: float,
        hooks: CallHooks | None = None,
        caller: str | None = None,
        client: str | None = None,
    ) -> dict[str, Any]:
        spec = self._specs.get(upstream)
        if spec is not None and spec.transport in REQUEST_RESPONSE:
            if not spec.enabled:
                raise UpstreamUnavailable(f"upstream {upstream!r} is disabled")
            _check_credentials(spec)
            rest = self._rest_for(spec)
            if isinstance(rest, A2aUpstream):  # its tasks are the caller's own
                return await rest.request(method, params, user=user, timeout=timeout, hooks=hooks, caller=caller)
            return await rest.request(method, params, user=user, timeout=timeout, hooks=hooks)
        per_user = spec is not None and spec.isolation == "per_user"
        conn = self._conns.get((upstream, user if per_user else None)) or await self._get(upstream, user)
        if per_user:
            conn.last_used = anyio.current_time()
        if spec is not None and user_grant(spec) is not None:
            # The SDK's transports swallow a failed refresh inside their auth flow; asking first
            # turns an expired or refused connection into the user's clear error, not a timeout.
            await self._per_user.source(spec, user).token()
        if spec is not None and hooks is not None and (hooks.legacy or hooks.ask is not None):
            answer = await self._on_own_session(spec, conn, user, client, method, params, hooks, timeout)
            if answer is not None:
                return answer
        return await conn.request(method, params, timeout=timeout, hooks=hooks, caller=user)

    async def _on_own_session(
        self,
        spec: UpstreamSpec,
        shared: UpstreamConnection,
        user: str | None,
        credential: str | None,
        method: str,
        params: dict[str, Any] | None,
        hooks: CallHooks,
        timeout: float,
    ) -> dict[str, Any] | None:
        """The call's answer on the caller's own upstream session when their call needs one (None:
        the shared one serves it). The session is held from the start: `drop_caller` meanwhile (roots
        changed through another replica) ends it only after this call."""
        client = shared.client or await shared.ready_client(timeout)
        caps = _declared(params)
        choice = choose_session(
            spec,
            caller_legacy=hooks.legacy,
            caller_askable=askable(caps),
            shared_is_legacy=client.protocol_version not in MODERN_PROTOCOL_VERSIONS,
            legacy_refused=spec.name in self._legacy_refused,
        )
        if not choice.own:
            return None
        caller = caller_key(user, hooks.session, caps, credential)
        mode: ClientMode = choice.mode

        def make() -> CallerSession:
            return self._caller_session(spec, user, mode, caps)

        with self._callers.hold(spec.name, caller):
            conn = await self._callers.get(spec.name, caller, user, spec.transport == "stdio", make)
            with self._callers.using(conn):  # no await since `get`: a session dropped meanwhile waits for this call
                try:
                    await conn.wait_ready(timeout)
                except UpstreamUnavailable:
                    await self._callers.drop(spec.name, caller)
                    if spec.protocol == "auto" and client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                        # It speaks 2026-07-28 only: this caller's era is bridged on the shared session.
                        log.info("upstream %s refused a 2025-11-25 session; bridging its callers", spec.name)
                        self._legacy_refused.add(spec.name)
                        return None
                    raise
                return await conn.request(method, params, timeout=timeout, hooks=hooks)

    def asks_mid_call(self, upstream: str) -> bool:
        # Per-user sessions negotiate as the shared one did: the same upstream, the same answer.
        conn = self._conns.get((upstream, None))
        return conn is not None and conn.asks_mid_call

    async def roots_changed(self, user: str | None, session: str, ask: AskCallback | None) -> None:
        """A 2025-11-25 caller (`user`, and its MCP session's key) changed its roots: its own upstream
        sessions are told, as its client would tell a server directly; never a shared session (which
        declares no roots) nor another caller's. `ask` puts to the caller what they ask back; without
        one (the caller cannot be asked outside a call here: no stream of its open on this replica)
        they end instead, as on the other replicas, and its next call opens a new one, which asks."""
        caller = caller_key(user, session, None)
        if ask is None:
            self._callers.drop_caller(caller)
            return
        for conn in self._callers.of_caller(caller):
            try:
                await conn.roots_changed(ask)
            except Exception as exc:  # noqa: BLE001 - one session's failure must not keep the others untold
                log.info("a caller's changed roots were not passed on to one of its sessions (%s)", type(exc).__name__)

    async def roots_changed_elsewhere(self, caller: str) -> None:
        """A 2025-11-25 caller changed its roots through another replica (`caller`: `caller_digest` of
        its key, as that replica's change feed said): its own upstream sessions here cannot be told
        (this replica usually cannot ask the caller: its stream is elsewhere), so they end, and its
        next call here opens a new one, which asks the caller for its roots on that call's way. One
        lookup, whatever the number of sessions here."""
        key = self._callers.caller_of(caller)
        if key is not None:
            self._callers.drop_caller(key)

    async def subscribe(self, upstream: str, uri: str) -> None:
        """Count one more interest in a resource's updates; the first subscribes upstream. One that
        fails (or is cancelled) counts nothing: only interests that took are ever given back."""
        self._resource_refs[(upstream, uri)] += 1
        if self._resource_refs[(upstream, uri)] == 1:
            try:
                await (await self._get(upstream, None)).set_subscribed(uri, True)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.unsubscribe(upstream, uri)
                raise

    async def unsubscribe(self, upstream: str, uri: str) -> None:
        """Count one less; the last unsubscribes upstream."""
        key = (upstream, uri)
        if self._resource_refs[key] <= 0:
            return
        self._resource_refs[key] -= 1
        if self._resource_refs[key] == 0:
            del self._resource_refs[key]
            conn = self._conns.get((upstream, None))
            if conn is not None:
                await conn.set_subscribed(uri, False)

    def connection_figures(self) -> dict[str, tuple[bool, int, float | None]]:
        """Per upstream: whether a connection is live, failures so far, and when it last failed."""
        out: dict[str, tuple[bool, int, float | None]] = {}
        for (name, _user), conn in list(self._conns.items()):
            live, failures, failed_at = out.get(name, (False, 0, None))
            at = max((t for t in (failed_at, conn.failed_at) if t is not None), default=None)
            out[name] = (live or conn.client is not None, failures + conn.failures, at)
        return out

    def connection(self, name: str) -> UpstreamConnection | None:
        return self._conns.get((name, None))

    async def close(self, name: str) -> None:
        """Stop every connection of upstream `name` (on delete, disable or change)."""
        async with self._lock:
            keys = [k for k in self._conns if k[0] == name]
            conns = [self._conns.pop(k) for k in keys]
            self._specs.pop(name, None)
            self._rest.pop(name, None)
            self._bearers.pop(name, None)
            auth_http = self._http_with_auth.pop(name, None)
        for conn in conns:
            await conn.stop()
        await self._callers.close(name)
        self._legacy_refused.discard(name)
        await self._per_user.forget(name)
        if auth_http is not None:
            await auth_http.aclose()

    async def reap_idle(self) -> None:
        """Close per-user connections and callers' own sessions idle for longer than the configured time."""
        await self._callers.reap_idle()
        now = anyio.current_time()
        idle = [k for k, c in self._conns.items() if k[1] is not None and now - c.last_used > self._per_user_idle]
        for key in idle:
            conn = self._conns.pop(key, None)
            if conn is not None:
                await conn.stop()
            if key[1] is not None:
                await self._per_user.forget(key[0], key[1])

    async def aclose(self) -> None:
        conns = list(self._conns.values())
        self._conns.clear()
        with anyio.CancelScope(shield=True):
            for conn in conns:
                await conn.stop()
            await self._callers.aclose()
            await self.http.aclose()
            await self.fast_http.close()
            await self._callers_http.close()
            for client in (*self._http_by_headers.values(), *self._http_with_auth.values()):
                await client.aclose()
            await self._per_user.aclose()
