"""Forward a stdio MCP client to one of Bastion's virtual servers over Streamable HTTP.

Bastion is reached the way Bastion reaches its upstreams: one supervised `UpstreamConnection`
(reconnecting if the gateway restarts), here held at 2025-11-25 so that list_changed notices arrive
on its GET stream. Results and JSON-RPC errors pass through without being parsed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.server import ServerRequestContext
from mcp.server.caching import CacheHint
from mcp.server.context import CallNext, HandlerResult
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types import (
    PromptListChangedNotification,
    ResourceListChangedNotification,
    ServerNotification,
    SubscriptionsListenRequestParams,
    ToolListChangedNotification,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bastion import __version__
from bastion.cli.stdio_front import answering_stdio_server
from bastion.core.client_config import mcp_url
from bastion.core.errors import BastionError, Forbidden, NotFound, Unauthenticated, UpstreamError, UpstreamUnavailable
from bastion.core.models import UpstreamSpec
from bastion.pipeline.route import SERVED_METHODS, forwardable_meta
from bastion.upstream.connection import UpstreamConnection
from bastion.web.errors import to_mcp_error
from bastion.web.mcp_endpoint import AnyParams, VirtualMcpServer
from bastion.web.mcp_fast import CACHE_HINTED_METHODS
from bastion.web.relay import call_hooks
from bastion.web.session_link import SessionLink

log = logging.getLogger("bastion.connect")

_EVENTS: dict[str, tuple[ServerEvent, ServerNotification]] = {
    "notifications/tools/list_changed": (ToolsListChanged(), ToolListChangedNotification()),
    "notifications/prompts/list_changed": (PromptsListChanged(), PromptListChangedNotification()),
    "notifications/resources/list_changed": (ResourcesListChanged(), ResourceListChangedNotification()),
}
_CACHE_HINTS: dict[Any, CacheHint] = {m: CacheHint(ttl_ms=0, scope="private") for m in CACHE_HINTED_METHODS}



class ChangeRelay:
    """Passes Bastion's list_changed notices on to the stdio client, in whichever era it speaks."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self._session: ServerSession | None = None

    def remember(self, session: ServerSession) -> None:
        """The stdio client speaks 2025-11-25: `session` (any of its requests') reaches it."""
        self._session = session

    async def on_notification(self, _upstream: str, method: str) -> None:
        """The link's notification callback: one of Bastion's lists changed."""
        event, notification = _EVENTS.get(method, (None, None))
        if event is None or notification is None:
            return
        await self.bus.publish(event)  # 2026-07-28: the client's subscriptions/listen streams
        session = self._session  # 2025-11-25: the session itself, once initialized
        if session is None or session.client_params is None:
            return
        try:
            await session.send_notification(notification)
        except Exception:
            log.debug("could not pass %s on", method, exc_info=True)
            self._session = None


class _FailedResponses:
    """Remembers the first HTTP error answer, whose problem+json says why connecting failed."""

    def __init__(self) -> None:
        self.first: tuple[int, str] | None = None

    async def record(self, response: httpx2.Response) -> None:
        if response.status_code < 400 or self.first is not None:
            return
        await response.aread()
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = str(body.get("detail") or "") if isinstance(body, dict) else response.text.strip()[:200]
        self.first = (response.status_code, detail or response.reason_phrase)


def connect_error(reason: str, failure: tuple[int, str] | None, url: str, server: str) -> BastionError:
    """Why the first connection to Bastion failed, for the person who ran the command."""
    if failure is None:
        return UpstreamUnavailable(f"cannot reach Bastion at {url} ({reason}); is it running? (set --url or BASTION_URL)")
    status, detail = failure
    if status == 401:
        return Unauthenticated(f"Bastion at {url} refused the token: {detail} (set BASTION_TOKEN or --token)")
    if status == 403:
        return Forbidden(f"Bastion at {url} refused access to virtual server {server!r}: {detail}")
    if status == 404:
        return NotFound(f"Bastion at {url} has no virtual server {server!r}: {detail}")
    return UpstreamError(f"Bastion at {url} answered HTTP {status}: {detail}")


class GatewayLink(UpstreamConnection):
    """A supervised session to a virtual server, at 2025-11-25: Bastion sends list_changed on its
    GET stream, and serves no `subscriptions/listen` for a 2026-07-28 client to hear them on."""

    def _make_client(self, closed: anyio.Event) -> Client:
        client = super()._make_client(closed)
        client.mode = "legacy"
        return client


@asynccontextmanager
async def gateway_link(
    url: str, server: str, token: str | None, relay: ChangeRelay, *, connect_timeout: float
) -> AsyncIterator[GatewayLink]:
    """A connected link to virtual server `server`; raises a BastionError saying why it could not connect."""
    failures = _FailedResponses()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(30.0, read=None)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks={"response": [failures.record]}) as http,
        anyio.create_task_group() as tg,
    ):
        spec = UpstreamSpec(name="bastion", transport="streamable-http", url=mcp_url(url, server))
        link = GatewayLink(spec, http_client=http, on_notification=relay.on_notification, connect_timeout=connect_timeout)
        await tg.start(link.run)
        try:
            await link.wait_first_attempt()
            if link.client is None:
                raise connect_error(link.failure or "no answer", failures.first, url, server)
            yield link
        finally:
            await link.stop()


def forwarding_server(link: GatewayLink, relay: ChangeRelay, *, title: str) -> VirtualMcpServer:
    """A low-level SDK server whose every served method is a request to Bastion over `link`."""

    async def forward(ctx: ServerRequestContext[Any], _params: AnyParams) -> dict[str, Any]:
        raw = dict(ctx.params or {})
        params = {k: v for k, v in raw.items() if k != "_meta"}
        meta = forwardable_meta(raw)
        if meta is not None:
            params["_meta"] = meta
        try:
            # Bastion applies its own call deadline; a second one here could only be shorter.
            result = await link.request(ctx.method, params, timeout=math.inf, hooks=call_hooks(ctx))
        except BastionError as exc:
            raise to_mcp_error(exc) from None  # Bastion's JSON-RPC errors keep their code and data
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and "resultType" not in result:
            result = {**result, "resultType": "complete"}
        return result

    async def remember_connection(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            relay.remember(ctx.session)
        return await call_next(ctx)

    server = VirtualMcpServer("bastion", version=__version__, title=title, cache_hints=_CACHE_HINTS)
    for method in sorted(SERVED_METHODS):
        server.add_request_handler(method, AnyParams, forward)
    server.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, ListenHandler(relay.bus))
    server.middleware = [remember_connection]
    return server


async def serve_stdio(url: str, server: str, token: str | None, *, connect_timeout: float) -> None:
    """Connect to Bastion first (raising a BastionError if that fails), then serve stdin/stdout until EOF."""
    relay = ChangeRelay()
    async with gateway_link(url, server, token, relay, connect_timeout=connect_timeout) as link:
        mcp = forwarding_server(link, relay, title=f"Bastion virtual server {server}")
        async with answering_stdio_server() as (read, write):
            # Bastion's link between the streams gives a 2025-11-25 client's handlers its session's state
            # (the log level it set); the SDK still decides the era from the client's first request.
            streams = SessionLink(read, write)
            await mcp.run(streams.inbound, streams.outbound, mcp.create_initialization_options())
