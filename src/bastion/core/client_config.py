"""Ready-to-paste MCP client configurations for a virtual server.

Claude Desktop launches local processes only, so it runs `bastion connect SERVER`; VS Code and Cursor
speak Streamable HTTP and are given the server's URL with the token as a bearer header (VS Code
asks for it once with an input prompt and keeps it in its secret storage)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

CLIENTS = ("claude", "vscode", "cursor")
_PLACEHOLDER = "<your Bastion token>"


def mcp_url(base_url: str, server: str) -> str:
    return f"{base_url.rstrip('/')}/servers/{quote(server, safe='')}/mcp"


def client_config(
    client: str, server: str, base_url: str, token: str | None, command: str = "bastion"
) -> dict[str, Any]:
    """The configuration block `client` reads, for virtual server `server` (`command` runs `bastion`).
    A session token from `bastion login` is never written out (it expires); an API token is, since
    the caller asked for it."""
    shown = token if token and not token.startswith("bss_") else _PLACEHOLDER
    url = mcp_url(base_url, server)
    if client == "claude":
        env = {"BASTION_URL": base_url.rstrip("/"), "BASTION_TOKEN": shown}
        return {"mcpServers": {server: {"command": command, "args": ["connect", server], "env": env}}}
    if client == "vscode":
        prompt = {"type": "promptString", "id": "bastion-token", "description": f"Bastion token for {server}", "password": True}
        entry = {"type": "http", "url": url, "headers": {"Authorization": "Bearer ${input:bastion-token}"}}
        return {"inputs": [prompt], "servers": {server: entry}}
    return {"mcpServers": {server: {"url": url, "headers": {"Authorization": f"Bearer {shown}"}}}}


def sdk_snippet(server: str, base_url: str) -> str:
    """Python: the MCP SDK's Client on this virtual server."""
    return (
        "import httpx2\nfrom mcp import Client\nfrom mcp.client.streamable_http import streamable_http_client\n\n"
        "http = httpx2.AsyncClient(headers={\"Authorization\": \"Bearer \" + TOKEN})\n"
        f"async with Client(streamable_http_client({mcp_url(base_url, server)!r}, http_client=http)) as client:\n"
        "    print(await client.list_tools())\n"
    )
