"""Ready-to-paste MCP client configurations for a virtual server.

Claude Desktop launches local processes only, so it runs `bastion connect SERVER`; VS Code and Cursor
speak Streamable HTTP and are given the server's URL with the token as a bearer header (VS Code
asks for it once with an input prompt and keeps it in its secret storage)."""

from __future__ import annotations

import shutil
from typing import Any

from bastion.cli.forward import mcp_url

CLIENTS = ("claude", "vscode", "cursor")
_PLACEHOLDER = "<your Bastion token>"


def client_config(client: str, server: str, base_url: str, token: str | None) -> dict[str, Any]:
    """The configuration block `client` reads, for virtual server `server`. A session token from
    `bastion login` is never written out (it expires); an API token is, since you asked for it."""
    shown = token if token and not token.startswith("bss_") else _PLACEHOLDER
    url = mcp_url(base_url, server)
    if client == "claude":
        command = shutil.which("bastion") or "bastion"
        env = {"BASTION_URL": base_url.rstrip("/"), "BASTION_TOKEN": shown}
        return {"mcpServers": {server: {"command": command, "args": ["connect", server], "env": env}}}
    if client == "vscode":
        prompt = {"type": "promptString", "id": "bastion-token", "description": f"Bastion token for {server}", "password": True}
        entry = {"type": "http", "url": url, "headers": {"Authorization": "Bearer ${input:bastion-token}"}}
        return {"inputs": [prompt], "servers": {server: entry}}
    return {"mcpServers": {server: {"url": url, "headers": {"Authorization": f"Bearer {shown}"}}}}
