"""One supervised MCP session to an upstream: connect, serve requests, reconnect with backoff.

A connection is a background task that owns the SDK `Client` (its task groups must be entered and
left by one task). Requests from any task go through `request()`, multiplexed by JSON-RPC id on
the one session: a stdio upstream is one child process shared by all calls.

A connection is either shared (several callers; it declares no client capabilities, and what the
upstream sends mid-call is delivered only where it can be attributed with certainty) or a
caller's own (it declares that caller's capabilities, and everything it receives is theirs). A
caller's own session on Streamable HTTP is not one of these but Bastion's own (caller_http.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import httpx2
import mcp_types as types
from mcp import Client, MCPError
from mcp.client.session import IncomingMessage
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ResourceUpdated, ToolsListChanged
from mcp_types import jsonrpc
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bastion import __version__
from bastion.core.errors import (
    BastionError,
    UpstreamProtocolError,
    UpstreamRpcError,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from bastion.core.models import UpstreamSpec
from bastion.core.ports import AskCallback, CallHooks, ProgressCallback
from bastion.core.surrogates import UNFIT
from bastion.outbound import TOO_LARGE
from bastion.upstream.guard import AddressGuard
from bastion.upstream.launch_guard import LaunchGuard
from bastion.upstream.modern_http import ModernHttpClient
from bastion.upstream.oauth import BearerAuth, TokenSource
from bastion.upstream.questions import UpstreamQuestions
from bastion.upstream.raw import RawRequests
from bastion.upstream.transports import open_transport, stderr_tail

log = logging.getLogger("bastion.upstream")

_CLIENT_INFO = {"name": "bastion", "version": __version__}

NotificationHandler = Callable[[str, str], Awaitable[None]]
"""`(upstream name, notification method)` for the notifications the gateway acts on."""
ResourceUpdatedHandler = Callable[[str, str], Awaitable[None]]
"""`(upstream name, resource URI)` when a subscribed resource changed upstream."""

_RELAYED = {
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
}


_EVENT_METHODS: dict[type, str] = {
    ToolsListChanged: "notifications/tools/list_changed",
    PromptsListChanged: "notifications/prompts/list_changed",
    ResourcesListChanged: "notifications/resources/list_changed",
}


def _with_log_level(params: dict[str, Any] | None, level: str) -> dict[str, Any]:
    """The per-request log opt-in of 2026-07-28 (a 2025-11-25 session ignores it)."""
    params = dict(params or {})
    params["_meta"] = {**(params.get("_meta") or {}), "io.modelcontextprotocol/logLevel": level}
    return params


async def _cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free reason for a failed connect, for status and error messages."""
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return describe_failure(inner)
    if isinstance(exc, BastionError):
        return exc.detail
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename}" if exc.filename else "command not found"
    if isinstance(exc, PermissionError):
        return "command is not executable"
    if isinstance(exc, httpx2.ConnectError):
        return "connection refused or host unreachable"
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return "timed out"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from upstream"
    if isinstance(exc, MCPError):
        if exc.code == jsonrpc.CONNECTION_CLOSED:
            return "the upstream closed the connection (it exited, or does not speak MCP)"
        return f"MCP error {exc.code}: {exc.message}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return type(exc).__name__


def _backoff(attempt: int, base: float, cap: float) -> float:
    return min(cap, base * math.pow(2, attempt))


_NOBODY = "\x00nobody"
"""`UpstreamConnection._sole` of a session that has carried no caller's call yet (no caller id is this)."""
_NEUTRAL_METHODS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list", "ping"})
"""Requests that change nothing upstream (Bastion's own discovery sends them): they say nothing of whose
session-wide logs may follow."""


class UpstreamConnection:
    """A supervised session to one upstream for one isolation key (shared, or one user)."""

    def __init__(
        self,
        spec: UpstreamSpec,
        *,
        http_client: httpx2.AsyncClient | None,
        fast_http: aiohttp.ClientSession | None = None,
        sse_client_factory: Any = None,
        size_limits: tuple[int, int] | None = None,
        on_notification: NotificationHandler,
        connect_timeout: float,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        on_resource_updated: ResourceUpdatedHandler | None = None,
        guard: AddressGuard | None = None,
        launch_guard: LaunchGuard | None = None,
        bearer: TokenSource | None = None,
        mode: str = "auto",
        caller_capabilities: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self._mode = mode
        self._caller_caps = caller_capabilities
        """None for a shared connection; the caller's declared capabilities for a caller's own."""
        self._inflight: dict[object, CallHooks | None] = {}
        self._questions = UpstreamQuestions(
            attributed=self._attributed, shared_and_busy=lambda: not self.dedicated and bool(self._inflight)
        )
        self._sole: str | None = _NOBODY
        """On a shared session: the one caller whose calls it has carried since it connected, or None
        once it has carried another's too (see `_on_log`)."""
        self._sent_log_level: str | None = None
        self._bearer = bearer
        self._guard = guard
        self._launch_guard = launch_guard
        self._http = http_client
        self._fast_http = fast_http
        self._sse_client_factory = sse_client_factory
        self._size_limits = size_limits
        self._fast: ModernHttpClient | None = None
        self._on_notification = on_notification
        self._on_resource_updated = on_resource_updated
        self.resource_uris: set[str] = set()
        """Resources Bastion is subscribed to on this upstream (re-applied after every reconnect)."""
        self._subscriptions_changed = anyio.Event()
        self._acknowledged: frozenset[str] = frozenset()
        """Resources the open 2026-07-28 listen stream was acknowledged for."""
        self._acknowledged_changed = anyio.Event()
        self._connect_timeout = connect_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._client: Client | None = None
        self._raw: RawRequests | None = None
        """Bastion's requests on the current transport (each connect attempt opens its own)."""
        self._closed: tuple[anyio.Event, anyio.CancelScope] | None = None
        """While a session is served: its `closed` event and the scope serving it (see `stop()`)."""
        self._ready = anyio.Event()
        self._attempted = anyio.Event()
        self._stop = anyio.Event()
        self._done = anyio.Event()
        self.failure: str | None = None
        self.failures = 0
        """Sessions that failed to start or were lost (each is followed by a reconnect)."""
        self.failed_at: float | None = None
        self.last_used = 0.0

    @property
    def client(self) -> Client | None:
        return self._client

    async def _handle_message(self, message: IncomingMessage) -> None:
        client = self._client
        if client is not None and client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return  # the SDK also tees listen-stream events here; `_listen` delivers those, once
        method = getattr(message, "method", None)
        if method in _RELAYED:
            await self._on_notification(self.spec.name, method)
        elif method == "notifications/resources/updated" and self._on_resource_updated is not None:
            uri = getattr(getattr(message, "params", None), "uri", None)
            if uri is not None:
                await self._on_resource_updated(self.spec.name, str(uri))

    @property
    def dedicated(self) -> bool:
        """Whether this is one caller's own upstream session (not shared by several callers)."""
        return self._caller_caps is not None

    def _make_client(self, closed: anyio.Event) -> Client:
        # The SDK declares a capability for each callback given: a caller's own session declares
        # exactly what the caller declared, a shared one nothing (no caller's context is its own).
        caps = self._caller_caps or {}
        callbacks = self._questions.callbacks(caps)
        self._raw = RawRequests(client_info=_CLIENT_INFO, capabilities=caps)
        return Client(
            open_transport(
                self.spec,
                self._http,
                closed,
                BearerAuth(self._bearer) if self._bearer else None,
                self._sse_client_factory,
                **({"max_message_bytes": self._size_limits[0]} if self._size_limits is not None else {}),
                raw=self._raw,
            ),
            mode=self._mode,
            client_info=types.Implementation(name=_CLIENT_INFO["name"], version=_CLIENT_INFO["version"]),
            message_handler=self._handle_message,
            cache=None,
            logging_callback=self._on_log,
            **callbacks,
        )

    # What an upstream sends mid-call (a log entry, a question) names no call over the SDK client.
    # On a caller's own session it is that caller's. On a shared session it is delivered only when
    # it can be attributed with certainty: a question to the one call in flight (the shared session
    # declares no capability to ask, so only an upstream asking within a call does); a log line to
    # the one call in flight (2025-11-25) or the one that opted in to logs (2026-07-28), and only while
    # every call the session has carried was that caller's (user, else token): an upstream also logs
    # on its own (e.g. server-everything's simulated logging, turned on by one caller, logs every 5 s
    # whoever's call is in flight). Questions are put to the caller by `UpstreamQuestions` (questions.py).

    def _note_caller(self, method: str, caller: str | None) -> None:
        if self.dedicated or caller is None or method in _NEUTRAL_METHODS:
            return  # Bastion's own requests (discovery, subscriptions) are nobody's
        if self._sole is _NOBODY:
            self._sole = caller
        elif self._sole != caller:
            self._sole = None

    def _attributed(self) -> CallHooks | None:
        if self.dedicated:
            # Calls of one 2025-11-25 client session all answer on that session: any of them will do.
            # Otherwise (a 2026-07-28 caller's calls, each bridged on its own) only a single call.
            calls = [h for h in self._inflight.values() if h is not None]
            if len(calls) == 1 or (calls and calls[0].session is not None and all(h.session == calls[0].session for h in calls)):
                return calls[0]
            return None
        if len(self._inflight) != 1:
            return None
        return next(iter(self._inflight.values()))

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        client = self._client
        modern = client is not None and client.protocol_version in MODERN_PROTOCOL_VERSIONS
        if modern and not self.dedicated:
            opted = [h for h in self._inflight.values() if h is not None and h.log_opt_in() is not None]
            hooks = opted[0] if len(opted) == 1 else None
        else:
            hooks = self._attributed()
        if not self.dedicated and (self._sole is None or self._sole is _NOBODY):
            hooks = None  # a shared session's line, and the session has carried several callers' calls
        if hooks is not None and hooks.on_log is not None:
            await hooks.on_log(params.model_dump(by_alias=True, mode="json", exclude_none=True))

    async def roots_changed(self, ask: AskCallback) -> None:
        """The caller whose own session this is changed its roots (see `UpstreamQuestions.roots_changed`)."""
        client = self._client
        if not self.dedicated or "roots" not in (self._caller_caps or {}) or client is None:
            return
        try:
            await self._questions.roots_changed(client, ask)
        except Exception as exc:  # noqa: BLE001 - the caller's notification has no one to be answered to
            log.info("upstream %s: roots/list_changed not sent: %s", self.spec.name, describe_failure(exc))

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, and reconnect after every loss until `stop()`. Reports started at once."""
        task_status.started()
        attempt = 0
        said = ""  # the failure last said at WARNING: the same again is said at DEBUG
        try:
            while not self._stop.is_set():
                if await self._session_once():
                    attempt, said = 0, ""
                if self._stop.is_set():
                    break
                self.failures += 1
                self.failed_at = time.time()
                tail = stderr_tail(self.spec.name) if self.spec.transport == "stdio" else ""
                failure = f"{self.failure}; its stderr ended with: {tail}" if tail else str(self.failure)
                # Once per failure, not once per attempt (every 30 s for as long as it lasts); the
                # same failure whose stderr was read in time at one attempt and not at the next is
                # still the same failure.
                reason = str(self.failure)
                log.log(logging.DEBUG if reason == said else logging.WARNING, "upstream %s: %s", self.spec.name, failure)
                said = reason
                self._attempted.set()
                with anyio.move_on_after(_backoff(attempt, self._backoff_base, self._backoff_cap)):
                    await self._stop.wait()
                attempt += 1
        finally:
            self._client = None
            self._attempted.set()
            self._done.set()

    async def _session_once(self) -> bool:
        """One connection's life: handshake (within the connect deadline), serve until it ends.

        Returns whether the handshake succeeded. The deadline is a cancel scope around the whole
        session (the SDK client's task groups live inside it) that is lifted once connected.
        """
        closed = anyio.Event()
        connected = False
        self._sole = _NOBODY  # a new session has carried nobody's calls yet
        try:
            if self._launch_guard is not None:
                await self._launch_guard.check(self.spec)  # every start: the owner or the allow-list may have changed
            if self._guard is not None:
                await self._guard.check(self.spec)  # every attempt: the name may resolve elsewhere now
            with anyio.CancelScope(deadline=anyio.current_time() + self._connect_timeout) as scope:
                async with self._make_client(closed) as client:
                    scope.deadline = math.inf
                    connected = True
                    await self._serve(client, closed)
            if not connected and scope.cancelled_caught:
                self.failure = f"no MCP handshake within {self._connect_timeout:g} s"
            elif connected:
                self.failure = "the upstream went away (process exited or connection lost); reconnecting"
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status reason
            self.failure = describe_failure(exc) if not connected else (
                f"the connection failed: {describe_failure(exc)}; reconnecting"
            )
        finally:
            self._client = None
            self._fast = None
            self._closed = None
            if connected:
                self._ready = anyio.Event()
                self._attempted = anyio.Event()
        return connected

    def _fast_client(self, client: Client) -> ModernHttpClient | None:
        """The lean path for a stateless (2026-07-28) HTTP upstream; None where the SDK must carry it."""
        if self._fast_http is None or self.spec.transport != "streamable-http":
            return None
        version = client.protocol_version
        if version not in MODERN_PROTOCOL_VERSIONS:
            return None
        return ModernHttpClient(
            self._fast_http,
            upstream=self.spec.name,
            url=self.spec.url or "",
            headers=self.spec.headers,
            bearer=self._bearer,
            protocol_version=version,
            client_info=_CLIENT_INFO,
            client_capabilities={},
            **(
                {"max_message_bytes": self._size_limits[0], "max_result_bytes": self._size_limits[1]}
                if self._size_limits is not None
                else {}
            ),
        )

    async def _serve(self, client: Client, closed: anyio.Event) -> None:
        """Serve until the upstream's side ends or `stop()` (both set `closed`). No task of its own on
        2025-11-25: a caller's own session is mostly idle, and each task costs memory while it waits."""
        self._fast = self._fast_client(client)
        self._client = client
        self.failure = None
        self._ready.set()
        self._attempted.set()
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            with anyio.CancelScope() as scope:
                self._closed = (closed, scope)
                if self._stop.is_set():
                    closed.set()  # stopped while connecting
                for uri in sorted(self.resource_uris):
                    await self._legacy_subscription(client, "resources/subscribe", uri)
                await closed.wait()
            return
        async with anyio.create_task_group() as tg:
            self._closed = (closed, tg.cancel_scope)
            if self._stop.is_set():
                closed.set()
            tg.start_soon(self._listen, client)
            await closed.wait()
            tg.cancel_scope.cancel()

    async def _listen(self, client: Client) -> None:
        """On 2026-07-28, change notices come only on a `subscriptions/listen` stream: hold one open,
        and open it anew whenever the set of subscribed resources changes."""
        caps = client.server_capabilities
        tools = bool(caps.tools and caps.tools.list_changed)
        prompts = bool(caps.prompts and caps.prompts.list_changed)
        resources = bool(caps.resources and caps.resources.list_changed)
        subscribable = bool(caps.resources and caps.resources.subscribe)
        while True:
            self._subscriptions_changed = anyio.Event()
            uris = sorted(self.resource_uris) if subscribable else []
            if not (tools or prompts or resources or uris):
                await self._subscriptions_changed.wait()
                continue
            with anyio.CancelScope() as scope:
                try:
                    listening = client.listen(
                        tools_list_changed=tools,
                        prompts_list_changed=prompts,
                        resources_list_changed=resources,
                        resource_subscriptions=uris,
                    )
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_cancel_on, self._subscriptions_changed, scope)
                        async with listening as subscription:
                            self._acknowledge(frozenset(uris))
                            async for event in subscription:
                                await self._deliver(event)
                except Exception as exc:  # noqa: BLE001 - without a stream, refresh and health checks still run
                    log.info("upstream %s: no change notifications (%s)", self.spec.name, describe_failure(exc))
                    await self._subscriptions_changed.wait()
            self._acknowledge(frozenset())
            # The stream ended (gracefully, or for a new subscription set): listen again.

    def _acknowledge(self, uris: frozenset[str]) -> None:
        self._acknowledged = uris
        self._acknowledged_changed.set()
        self._acknowledged_changed = anyio.Event()

    async def _deliver(self, event: object) -> None:
        if isinstance(event, ResourceUpdated):
            if self._on_resource_updated is not None:
                await self._on_resource_updated(self.spec.name, event.uri)
            return
        method = _EVENT_METHODS.get(type(event))
        if method is not None:
            await self._on_notification(self.spec.name, method)

    async def _legacy_subscription(self, client: Client, method: str, uri: str) -> None:
        try:
            with anyio.fail_after(self._connect_timeout):
                await self._raw_request(client, method, {"uri": uri})
        except Exception as exc:  # noqa: BLE001 - one refused subscription must not end the session
            log.warning("upstream %s: %s %s failed: %s", self.spec.name, method, uri, describe_failure(exc))

    async def set_subscribed(self, uri: str, subscribed: bool) -> None:
        """Subscribe to (or drop) a resource's updates on this upstream, now and after reconnects."""
        if subscribed == (uri in self.resource_uris):
            return
        (self.resource_uris.add if subscribed else self.resource_uris.discard)(uri)
        client = self._client
        if client is None:
            return  # applied when the session is (re)established
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            self._subscriptions_changed.set()
            caps = client.server_capabilities.resources
            if subscribed and caps is not None and caps.subscribe:
                # Return once the new listen stream is acknowledged, so an update right after the
                # subscribe is not missed; bounded, since the stream may fail (then nothing arrives).
                with anyio.move_on_after(min(self._connect_timeout, 5.0)):
                    while uri not in self._acknowledged and self._client is client:
                        await self._acknowledged_changed.wait()
        else:
            method = "resources/subscribe" if subscribed else "resources/unsubscribe"
            await self._legacy_subscription(client, method, uri)

    async def wait_first_attempt(self) -> None:
        await self._attempted.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._closed is not None:
            closed, scope = self._closed
            closed.set()
            scope.cancel()  # a subscription in progress, too
        await self._done.wait()

    async def ready_client(self, timeout: float) -> Client:
        """The live client, waiting for a connect in progress; fails fast while the upstream is down."""
        client = self._client
        if client is not None:
            return client
        if self.failure is not None:
            raise UpstreamUnavailable(f"upstream {self.spec.name!r} is unavailable: {self.failure}")
        with anyio.move_on_after(min(timeout, self._connect_timeout)):
            await self._ready.wait()
        client = self._client
        if client is None:
            reason = self.failure or "still connecting"
            raise UpstreamUnavailable(f"upstream {self.spec.name!r} is unavailable: {reason}")
        return client

    async def wait_ready(self, timeout: float) -> None:
        """Wait for a connect in progress; UpstreamUnavailable if there is no live session."""
        await self.ready_client(timeout)

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        timeout: float,
        hooks: CallHooks | None = None,
        caller: str | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the raw result; errors come back as BastionErrors. `caller`:
        whose call it is (the user, else the token), None for Bastion's own."""
        client = self._client or await self.ready_client(timeout)
        fast = self._fast
        name = self.spec.name
        token = object()
        if fast is None:
            self._inflight[token] = hooks
            self._note_caller(method, caller)
            level = hooks.log_opt_in() if hooks is not None else None
            if level is not None:
                params = _with_log_level(params, level)
            if self.dedicated and client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                await self._follow_log_level(client, hooks.log_level if hooks is not None else None)
        try:
            with anyio.fail_after(timeout):
                if fast is not None:
                    return await fast.request(method, params, hooks=hooks)
                on_progress = hooks.on_progress if hooks is not None else None
                return await self._raw_request(client, method, params, on_progress)
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {name!r} did not answer {method} within {timeout:g} s") from None
        except MCPError as exc:
            if TOO_LARGE in exc.message:  # a size cap of Bastion's client, reported through the SDK
                raise UpstreamTooLarge(f"upstream {name!r} sent a {exc.message[exc.message.find(TOO_LARGE):]}") from None
            if UNFIT in exc.message:  # NaN or an infinity, refused by Bastion's client or its stdio reader
                raise UpstreamProtocolError(f"upstream {name!r} sent {exc.message[exc.message.find(UNFIT):]}") from None
            if exc.code == jsonrpc.CONNECTION_CLOSED:
                raise UpstreamUnavailable(f"upstream {name!r} closed the connection during {method}") from None
            if exc.code == jsonrpc.REQUEST_TIMEOUT:
                raise UpstreamTimeout(f"upstream {name!r} did not answer {method} in time") from None
            raise UpstreamRpcError(exc.message, exc.code, exc.data) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            raise UpstreamUnavailable(f"upstream {name!r} closed the connection during {method}") from None
        except httpx2.HTTPError as exc:
            raise UpstreamUnavailable(f"upstream {name!r} failed during {method}: {describe_failure(exc)}") from None
        except ValueError as exc:
            raise UpstreamProtocolError(f"upstream {name!r} sent an invalid reply to {method}: {exc}") from None
        finally:
            self._inflight.pop(token, None)

    async def _raw_request(
        self, client: Client, method: str, params: dict[str, Any] | None, on_progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        raw = self._raw
        if raw is None:
            raise MCPError(jsonrpc.CONNECTION_CLOSED, "Connection closed")
        return await raw.request(method, params, version=client.protocol_version, on_progress=on_progress)

    async def _follow_log_level(self, client: Client, level: str | None) -> None:
        """A caller's own 2025-11-25 session logs at the level the caller set (with setLevel)."""
        logging_cap = client.server_capabilities.logging
        if level is None or level == self._sent_log_level or logging_cap is None:
            return
        self._sent_log_level = level
        try:
            with anyio.fail_after(self._connect_timeout):
                await self._raw_request(client, "logging/setLevel", {"level": level})
        except Exception as exc:  # noqa: BLE001 - the call goes on; Bastion still filters by the level
            log.info("upstream %s: logging/setLevel failed: %s", self.spec.name, describe_failure(exc))

    @property
    def answers_awaited(self) -> int:
        """Requests sent on the current SDK transport that the upstream has not answered yet."""
        return self._raw.awaiting if self._raw is not None else 0

    @property
    def asks_mid_call(self) -> bool:
        """Whether this session's upstream may send input requests during a call (2025-11-25)."""
        client = self._client
        return self._fast is None and client is not None and client.protocol_version not in MODERN_PROTOCOL_VERSIONS
