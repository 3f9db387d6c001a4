"""A small typed async client for Bastion's REST facade, for Python services that are not MCP clients.

    async with BastionClient("https://bastion.example/servers/dev", token) as c:
        result = await c.call_tool("github__search", {"query": "bastion"})

`BastionMcpClient` offers the same calls over the server's MCP endpoint. Failures raise the same classes as Bastion itself (`bastion.core.errors`): `Forbidden`,
`RateLimited` (with `retry_after`), `InvalidArguments` (with `errors`), `UpstreamError`, ...
"""

from bastion.client.facade import BastionClient, ToolResult, error_from
from bastion.client.mcp import BastionMcpClient

__all__ = ["BastionClient", "BastionMcpClient", "ToolResult", "error_from"]
