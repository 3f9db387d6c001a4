"""A dual-era upstream that asks the old way, like the SDK's examples/servers/everything-server:
its tools ask with live server-to-client requests (elicitation, sampling, roots) and log with
`notifications/message`, whichever era the session speaks; spoken to in 2026-07-28 they cannot ask.

    python tests/upstreams/pushing_server.py --transport stdio|sse|streamable-http [--port 0]

HTTP transports print ``READY <port>``. The tool names and answers follow the conformance suite's
fixed names (the SDK example's texts), so a client sees the same thing directly and through Bastion.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import warnings
from pathlib import Path

from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import MISSING_REQUIRED_CLIENT_CAPABILITY, SamplingMessage, TextContent
from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: `tests` importable
from tests.upstreams.serving import serve_ready

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)  # logging, roots, push-style asks on purpose


class UserResponse(BaseModel):
    response: str = Field(description="User's response")


def build_server() -> MCPServer:
    mcp = MCPServer(name="pushing", version="1.0.0")

    @mcp.tool()
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Asks the user by a live elicitation request."""
        try:
            result = await ctx.elicit(message=message, schema=UserResponse)
        except Exception as exc:
            return f"Elicitation not supported or error: {exc}"
        content = result.data.model_dump_json() if result.action == "accept" else "{}"
        return f"User response: action={result.action}, content={content}"

    @mcp.tool()
    async def test_sampling(prompt: str, ctx: Context) -> str:
        """Asks the client's model by a live sampling request."""
        try:
            message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
            result = await ctx.session.create_message(messages=[message], max_tokens=100, related_request_id=ctx.request_id)
        except Exception as exc:
            return f"Sampling not supported or error: {exc}"
        return f"LLM response: {result.content.text if isinstance(result.content, TextContent) else 'No response'}"

    @mcp.tool()
    async def test_roots(ctx: Context) -> str:
        """Asks the client for its roots (a live roots/list request)."""
        try:
            roots = await ctx.session.list_roots()
        except Exception as exc:
            return f"Roots not supported or error: {exc}"
        return ", ".join(str(r.uri) for r in roots.roots) or "no roots"

    @mcp.tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three info log entries during the call."""
        for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.info(text)
        return "Tool with logging executed successfully"

    @mcp.tool()
    async def test_missing_capability(ctx: Context) -> str:
        """Refuses (a JSON-RPC error) unless the client declared sampling."""
        capabilities = ctx.session.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="This tool requires the client 'sampling' capability",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return "Client declared sampling capability; proceeding."

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=["stdio", "sse", "streamable-http"], default="stdio")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    mcp = build_server()
    if args.transport == "stdio":
        mcp.run("stdio")
        return
    if args.transport == "sse":
        app = mcp.sse_app(sse_path="/sse", message_path="/messages/", host="127.0.0.1")
    else:
        app = mcp.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    asyncio.run(serve_ready(app, args.port, name="pushing upstream"))


if __name__ == "__main__":
    main()
