"""The everything-style upstream: a dual-era server that asks the old way, like the SDK's
examples/servers/everything-server. Its asking tools ask with live server-to-client requests
(`ctx.elicit`, `create_message`, `list_roots`) and log with `notifications/message`, whichever era
the session speaks; spoken to in 2026-07-28 they cannot ask (the SDK refuses, the tool says so).

    python tests/upstreams/pushing_server.py --transport stdio|sse|streamable-http [--port 0]

HTTP transports print ``READY <port>``. Everything else (the fixed names the conformance suite calls,
the 2026-07-28 input_required tools, resources, prompts, completion, SEP-1699 event store) is
Bastion's conformance fixture, tests/conformance/upstream.py: one upstream, whose asking tools are
swapped here for the push-style ones with the SDK example's texts and schemas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import MISSING_REQUIRED_CLIENT_CAPABILITY, SamplingMessage, TextContent
from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: `tests` importable
from tests.conformance import upstream as fixture
from tests.upstreams.serving import serve_ready

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)  # logging, roots, push-style asks on purpose

PUSH_TOOLS = (
    "test_elicitation",
    "test_sampling",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "test_missing_capability",
    "test_reconnection",
)


class UserResponse(BaseModel):
    response: str = Field(description="User's response")


class Sep1034Defaults(BaseModel):
    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active", description="User status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(default=True, description="Verification status")


def _answered(action: str, data: BaseModel | dict[str, Any] | None) -> str:
    if action != "accept" or data is None:
        return "{}"
    return data.model_dump_json() if isinstance(data, BaseModel) else json.dumps(data)


def build_server() -> MCPServer:
    mcp = fixture.build_server()
    for name in PUSH_TOOLS:
        mcp.remove_tool(name)

    @mcp.tool()
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Asks the user by a live elicitation request."""
        try:
            result = await ctx.elicit(message=message, schema=UserResponse)
        except Exception as exc:
            return f"Elicitation not supported or error: {exc}"
        return f"User response: action={result.action}, content={_answered(result.action, getattr(result, 'data', None))}"

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
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        """Asks by a live elicitation whose fields all carry defaults (SEP-1034)."""
        try:
            result = await ctx.elicit(message="Please provide user information", schema=Sep1034Defaults)
        except Exception as exc:
            return f"Elicitation not supported or error: {exc}"
        return f"Elicitation result: action={result.action}, content={_answered(result.action, getattr(result, 'data', None))}"

    @mcp.tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        """Asks by a live elicitation with all five enum shapes (SEP-1330), in any era."""
        message = "Please select values using different enum schema types"
        try:
            result = await ctx.session.elicit_form(message, fixture.SEP1330_SCHEMA, related_request_id=ctx.request_id)
        except Exception as exc:
            return f"Elicitation not supported or error: {exc}"
        return f"Elicitation completed: action={result.action}, content={_answered(result.action, result.content)}"

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

    @mcp.tool()
    async def test_reconnection(ctx: Context) -> str:
        """Logs, closes its SSE stream mid-call (SEP-1699), logs again on the resumed stream, answers."""
        await ctx.info("Before disconnect")
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)  # the client reconnects with Last-Event-ID meanwhile
        await ctx.info("After reconnect")
        return "Reconnection test completed"

    @mcp.tool()
    async def test_roots(ctx: Context) -> str:
        """Asks the client for its roots (a live roots/list request)."""
        try:
            roots = await ctx.session.list_roots()
        except Exception as exc:
            return f"Roots not supported or error: {exc}"
        return ", ".join(str(r.uri) for r in roots.roots) or "no roots"

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
        # SEP-1699 like the SDK example: priming events, a 100 ms retry field, Last-Event-ID replay.
        store = fixture.MemoryEventStore()
        app = mcp.streamable_http_app(streamable_http_path="/mcp", event_store=store, retry_interval=100, host="127.0.0.1")
    asyncio.run(serve_ready(app, args.port, name="pushing upstream", http="h11"))


if __name__ == "__main__":
    main()
