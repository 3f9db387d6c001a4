"""The MCP upstream that the gateway's end-to-end tests run behind Bastion.

    python tests/upstreams/fixture_server.py --transport stdio
    python tests/upstreams/fixture_server.py --transport streamable-http [--port 0] [--stateless]
    python tests/upstreams/fixture_server.py --transport sse [--port 0]

Add ``--counter`` to also serve the subscribable resource ``fixture://counter`` and the
tool ``bump`` (off by default, so the default tool and resource lists stay as they are).
``--bare`` serves only ``add_tool`` and ``add_resource`` (an upstream that starts harmless and
changes what it lists on command); ``--extra-tools N`` also lists N tools ``bulk_0``... .
Add ``--mutable`` to also serve ``redescribe`` and ``drop_tool``, which change or remove a tool's
definition at runtime and say so with list_changed (a rug pull, for pinning tests).

Over HTTP it binds 127.0.0.1 (streamable HTTP at /mcp; SSE at /sse with
messages posted to /messages/) and prints exactly one line, ``READY <port>``,
to stdout once it is listening; ``--port 0`` picks a free port. Over stdio,
stdout carries only the protocol. Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

import anyio
from mcp.server import MCPServer, NotificationOptions, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resources import TextResource
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    Icon,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    ToolListChangedNotification,
    UnsubscribeRequestParams,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: `tests` importable
from tests.upstreams.serving import serve_ready

# The fixture deliberately exercises the logging capability, which 2026-07-28 deprecates.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

logger = logging.getLogger("fixture")

GREET_NAMES = ["alice", "albert", "bob"]
# Per process, shared by every server instance: how many `slow` calls were cancelled.
SLOW_CANCELLED = {"count": 0}
SLOW_RUNNING = {"count": 0}
# Per process (with --counter): the value `fixture://counter` reads.
COUNTER_URI = "fixture://counter"
COUNTER = {"value": 0}


def build_server(
    name: str = "fixture", counter: bool = False, bare: bool = False, extra_tools: int = 0, mutable: bool = False
) -> MCPServer:
    """Build the fixture server; every call returns a fresh, independent instance.

    With `counter`, also serve `fixture://counter` (subscribable in both eras) and `bump`. With
    `bare`, serve only `add_tool` and `add_resource`; `extra_tools` lists that many more tools.
    """
    mcp = MCPServer(name=name, version="1.0.0", instructions="Bastion test fixture upstream.")

    # Advertise tools/prompts/resources listChanged on the handshake-era
    # `initialize` (MCPServer advertises them as false by default), since
    # add_tool really sends notifications/tools/list_changed.
    lowlevel = mcp._lowlevel_server
    lowlevel.create_initialization_options = functools.partial(  # type: ignore[method-assign]
        lowlevel.create_initialization_options,
        NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
    )

    # Accept logging/setLevel so gateways that forward it get a result, and
    # so the logging capability is advertised. The level itself is not applied.
    async def set_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        logger.info("logging/setLevel %s", params.level)
        return EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)

    @mcp.tool()
    async def add_tool(name: str, ctx: Context, on_request_stream: bool = False, notify: bool = True) -> str:
        """Register a new tool `name` at runtime and send notifications/tools/list_changed.

        Handshake-era clients get the notification on the session's standalone
        channel (the GET stream over streamable HTTP), or on this call's own
        response stream when `on_request_stream` is true (the only way it can
        reach a stateless-HTTP client). 2026-07-28 clients get it through
        `subscriptions/listen`. With `notify` false nothing is sent (a server
        that changes its tools silently).
        """

        def dynamic() -> str:
            return f"{name} called"

        mcp.add_tool(dynamic, name=name, description=f"Tool {name} added at runtime.")
        if not notify:
            return "added"
        related = ctx.request_id if on_request_stream else None
        await ctx.session.send_notification(ToolListChangedNotification(), related_request_id=related)
        await ctx.notify_tools_changed()
        return "added"

    async def add_resource(uri: str, text: str, ctx: Context, notify: bool = True) -> str:
        """Serve the resource `uri` (reading `text`) at runtime and send notifications/resources/list_changed."""
        mcp.add_resource(TextResource(uri=uri, name=uri.rsplit("/", 1)[-1] or "resource", text=text, mime_type="text/plain"))
        if notify:
            await ctx.notify_resources_changed()
        return "added"

    for index in range(extra_tools):
        mcp.add_tool(_bulk(index), name=f"bulk_{index}", description=f"Bulk tool {index}.")
    if bare:
        mcp.add_tool(add_resource)
        return mcp

    @mcp.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Add two integers; structured output is {"result": a + b}."""
        return a + b

    @mcp.tool()
    def fail(message: str) -> CallToolResult:
        """Return a tool error result (isError true) whose text is exactly `message`."""
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)

    @mcp.tool()
    async def slow(seconds: float) -> str:
        """Sleep for `seconds` (cancellable), then return "done"."""
        SLOW_RUNNING["count"] += 1
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            SLOW_CANCELLED["count"] += 1
            raise
        finally:
            SLOW_RUNNING["count"] -= 1
        return "done"

    @mcp.tool()
    def slow_running() -> int:
        """Return how many `slow` calls are running in this process right now."""
        return SLOW_RUNNING["count"]

    @mcp.tool()
    def cancelled_count() -> int:
        """Return how many `slow` calls this process has seen cancelled."""
        return SLOW_CANCELLED["count"]

    @mcp.tool()
    async def progress(steps: int, ctx: Context) -> str:
        """Send `steps` progress notifications, then return "ok"."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}/{steps}")
        return "ok"

    @mcp.tool()
    def crash() -> str:
        """Kill this process at once with exit code 3 (simulates an upstream crash)."""
        sys.stderr.write("fixture upstream crashing on request\n")
        sys.stderr.flush()
        os._exit(3)

    @mcp.tool()
    def pid() -> str:
        """Return this process's id, so tests can see a restart."""
        return str(os.getpid())

    @mcp.tool()
    def whoami(ctx: Context) -> str:
        """Return the HTTP request headers this upstream received, as JSON ("{}" over stdio)."""
        headers = ctx.headers
        return json.dumps(dict(headers.items()) if headers is not None else {}, sort_keys=True)

    @mcp.tool()
    async def log(message: str, ctx: Context) -> str:
        """Send `message` as an info-level log notification, then return "logged"."""
        await ctx.info(message, logger_name="fixture")
        return "logged"

    @mcp.prompt()
    def greet(name: str) -> str:
        """Greet someone by name."""
        return f"Hello, {name}!"

    @mcp.resource("fixture://static", name="static", mime_type="text/plain")
    def static() -> str:
        """A fixed text resource."""
        return "static content"

    @mcp.resource("fixture://items/{item_id}", name="item", mime_type="text/plain")
    def item(item_id: str) -> str:
        """An item by id."""
        return f"item {item_id}"

    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if isinstance(ref, PromptReference) and ref.name == "greet" and argument.name == "name":
            values = [n for n in GREET_NAMES if n.startswith(argument.value)]
            return Completion(values=values, total=len(values), has_more=False)
        return None

    if counter:
        add_counter(mcp)
    if mutable:
        add_mutators(mcp)
    return mcp


def _bulk(index: int) -> Any:
    def bulk() -> str:
        return str(index)

    return bulk


def add_mutators(mcp: MCPServer) -> None:
    """`redescribe` and `drop_tool`: the upstream changes its own tools after they were approved."""

    async def tools_changed(ctx: Context) -> None:
        await ctx.session.send_notification(ToolListChangedNotification())
        await ctx.notify_tools_changed()

    @mcp.tool()
    async def redescribe(
        tool: str, description: str, ctx: Context, meta: dict[str, Any] | None = None, icon: str | None = None
    ) -> str:
        """Give tool `tool` a new description (same behaviour), and `meta` as its `_meta` and `icon` as
        its one icon's URL when given, and send notifications/tools/list_changed."""
        found = mcp._tool_manager.get_tool(tool)  # MCPServer has no public accessor for one tool
        if found is None:
            return f"no tool {tool}"
        mcp.remove_tool(tool)
        mcp.add_tool(
            found.fn, name=tool, title=found.title, description=description, annotations=found.annotations,
            icons=[Icon(src=icon)] if icon else found.icons, meta=meta if meta is not None else found.meta,
        )
        await tools_changed(ctx)
        return "redescribed"

    @mcp.tool()
    async def drop_tool(tool: str, ctx: Context) -> str:
        """Remove tool `tool` and send notifications/tools/list_changed."""
        mcp.remove_tool(tool)
        await tools_changed(ctx)
        return "dropped"


def add_counter(mcp: MCPServer) -> None:
    """`fixture://counter` and `bump()`, which tells subscribers of both eras that it changed.

    2025-11-25 sessions subscribe with `resources/subscribe` and hear
    `notifications/resources/updated` on their session; 2026-07-28 clients name the URI in
    `subscriptions/listen` and hear it through the server's subscription bus. Advertises
    `resources.subscribe` in both eras (the SDK derives it from the handlers served).
    """
    # The 2025-11-25 connections subscribed to COUNTER_URI. Keyed by connection, not by
    # `ctx.session`: that is a fresh per-request proxy, so unsubscribe would never match it.
    connections: set[Any] = set()

    async def subscribe(ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        if str(params.uri) == COUNTER_URI:
            connections.add(ctx.session._connection)  # no public accessor for the connection
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        if str(params.uri) == COUNTER_URI:
            connections.discard(ctx.session._connection)
        return EmptyResult()

    lowlevel = mcp._lowlevel_server  # MCPServer has no subscribe hook
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)

    @mcp.resource(COUNTER_URI, name="counter", mime_type="text/plain")
    def counter() -> str:
        """How many times `bump` has run in this process."""
        return str(COUNTER["value"])

    @mcp.tool()
    async def bump(ctx: Context) -> int:
        """Increment `fixture://counter` and notify its subscribers (both eras); return the new value."""
        COUNTER["value"] += 1
        for connection in list(connections):
            try:
                await connection.send_resource_updated(COUNTER_URI)
            except Exception:
                connections.discard(connection)
        await ctx.notify_resource_updated(COUNTER_URI)
        return COUNTER["value"]


def setting_cookies(app: Any) -> Any:
    """Every response sets a fresh cookie, as a load balancer or a session-minded server might."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_with_cookie(message: Any) -> None:
            if message["type"] == "http.response.start":
                cookie = f"fixture-session={uuid.uuid4().hex}; Path=/".encode()
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await app(scope, receive, send_with_cookie)

    return wrapped


async def serve_http(mcp: MCPServer, transport: str, port: int, stateless: bool, set_cookie: bool = False) -> None:
    """Run uvicorn in-process and print ``READY <port>`` once it is listening."""
    if transport == "sse":
        app = mcp.sse_app(sse_path="/sse", message_path="/messages/", host="127.0.0.1")
    else:
        app = mcp.streamable_http_app(streamable_http_path="/mcp", stateless_http=stateless, host="127.0.0.1")
    await serve_ready(setting_cookies(app) if set_cookie else app, port, name="fixture upstream")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Bastion test fixture MCP upstream")
    parser.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    parser.add_argument("--port", type=int, default=0, help="HTTP port; 0 picks a free one")
    parser.add_argument("--stateless", action="store_true", help="stateless streamable HTTP")
    parser.add_argument("--name", default="fixture", help="server name reported in serverInfo")
    parser.add_argument("--counter", action="store_true", help="serve fixture://counter and the bump tool")
    parser.add_argument("--mutable", action="store_true", help="serve redescribe and drop_tool (rug pulls)")
    parser.add_argument("--set-cookie", action="store_true", help="set a cookie on every HTTP response")
    parser.add_argument("--bare", action="store_true", help="serve only add_tool and add_resource")
    parser.add_argument("--extra-tools", type=int, default=0, help="also list this many tools bulk_0...")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    sys.stderr.write("fixture upstream starting\n")
    sys.stderr.flush()

    mcp = build_server(args.name, counter=args.counter, bare=args.bare, extra_tools=args.extra_tools, mutable=args.mutable)
    if args.transport == "stdio":
        mcp.run("stdio")
    else:
        asyncio.run(serve_http(mcp, args.transport, args.port, args.stateless, args.set_cookie))


if __name__ == "__main__":
    main()
