"""A 2025-11-25 upstream that follows its client's roots as server-filesystem does: on
`notifications/roots/list_changed` it asks the client `roots/list` (outside any call) and keeps the
answer; the tool `known_roots` says what it holds (or why asking failed).

    python tests/upstreams/roots_server.py --transport sse|streamable-http [--port 0]   # prints READY <port>
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import warnings
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import NotificationParams

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: `tests` importable
from tests.upstreams.serving import serve_ready

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)  # roots on purpose


def build_server() -> MCPServer:
    mcp = MCPServer(name="roots", version="1.0.0")
    known: list[str] = ["nothing asked yet"]

    @mcp.tool()
    async def known_roots(ctx: Context) -> str:
        """The roots this server last got from its client after a roots/list_changed."""
        return known[0]

    async def roots_changed(ctx: Any, _params: NotificationParams) -> None:
        try:
            roots = await ctx.session.list_roots()
        except Exception as exc:  # said by the tool
            known[0] = f"asking failed: {exc}"
            return
        known[0] = ", ".join(str(r.uri) for r in roots.roots) or "no roots"

    # MCPServer has no parameter for client notifications: its low-level server takes the handler.
    mcp._lowlevel_server.add_notification_handler("notifications/roots/list_changed", NotificationParams, roots_changed)
    return mcp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=["sse", "streamable-http"], default="streamable-http")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    mcp = build_server()
    if args.transport == "sse":
        app = mcp.sse_app(sse_path="/sse", message_path="/messages/", host="127.0.0.1")
    else:
        app = mcp.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    asyncio.run(serve_ready(app, args.port, name="roots upstream", http="h11"))


if __name__ == "__main__":
    main()
