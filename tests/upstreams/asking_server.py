"""A 2025-11-25-only upstream (HTTP+SSE, no `server/discover`) whose tools ask the client mid-call.

    python tests/upstreams/asking_server.py --port 0      # prints READY <port>; SSE at /sse

Each tool sends a live server-to-client request during the call (elicitation/create,
sampling/createMessage, roots/list), the way servers written before 2026-07-28 do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.runner import serve_loop
from mcp.server.sse import SseServerTransport
from mcp.types import SamplingMessage, TextContent
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: `tests` importable
from tests.upstreams.serving import serve_ready


class Name(BaseModel):
    name: str


def build_server() -> MCPServer:
    mcp = MCPServer(name="asking", version="1.0.0")

    @mcp.tool()
    async def ask_name(ctx: Context) -> str:
        """Asks the user's name by elicitation, then greets them."""
        answer = await ctx.elicit("What is your name?", Name)
        if answer.action != "accept" or answer.data is None:
            return f"no name ({answer.action})"
        return f"Hello, {answer.data.name}!"

    @mcp.tool()
    async def ask_llm(prompt: str, ctx: Context) -> str:
        """Asks the client's model by sampling and returns its text."""
        message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
        result = await ctx.session.create_message(messages=[message], max_tokens=50)
        content = result.content
        return f"model said: {content.text if isinstance(content, TextContent) else content}"

    @mcp.tool()
    async def count_roots(ctx: Context) -> str:
        """Asks the client for its roots and counts them."""
        roots = await ctx.session.list_roots()
        return f"{len(roots.roots)} roots: " + ", ".join(str(r.uri) for r in roots.roots)

    @mcp.tool()
    async def log_line(message: str, ctx: Context) -> str:
        """Sends `message` as an info-level log notification during the call, then returns "logged"."""
        await ctx.info(message, logger_name="asking")
        return "logged"

    @mcp.tool()
    async def add_tool(name: str, ctx: Context) -> str:
        """Registers a tool `name` and tells the session its tool list changed (a 2025-11-25 notice)."""

        def added() -> str:
            return f"{name} called"

        mcp.add_tool(added, name=name, description=f"Tool {name} added at runtime.")
        await ctx.session.send_tool_list_changed()
        return "added"

    return mcp


def legacy_sse_app() -> Starlette:
    """HTTP+SSE serving the handshake era only (the SDK's own apps also accept 2026-07-28)."""
    lowlevel = build_server()._lowlevel_server
    sse = SseServerTransport("/messages/")

    async def handle_sse(request: Request) -> Response:
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):
            async with lowlevel.lifespan(lowlevel) as state:
                await serve_loop(lowlevel, read, write, lifespan_state=state, init_options=lowlevel.create_initialization_options())
        return Response()

    return Starlette(routes=[Route("/sse", handle_sse), Mount("/messages/", app=sse.handle_post_message)])


async def serve(port: int) -> None:
    app = legacy_sse_app()
    await serve_ready(app, port, name="asking upstream")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))
