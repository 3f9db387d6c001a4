"""A small typed async client for Bastion's REST facade, for Python services that are not MCP clients.

    async with BastionClient("https://bastion.example/servers/dev", token) as c:
        result = await c.call_tool("github__search", {"query": "bastion"})

Failures raise the same classes as Bastion itself (`bastion.core.errors`): `Forbidden`,
`RateLimited` (with `retry_after`), `InvalidArguments` (with `errors`), `UpstreamError`, ...
"""

from bastion.client.facade import BastionClient, ToolResult, error_from

__all__ = ["BastionClient", "ToolResult", "error_from"]
