"""`bastion servers ...`: compose virtual MCP servers from upstream capabilities."""

from __future__ import annotations

from typing import Any

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, emit, items_of, message

PREFIX_MODES = ("always", "never")
LIST_COLUMNS: list[Column] = [
    "name",
    "prefix",
    ("tools", lambda row: len((row.get("exposed") or {}).get("tools") or [])),
    "url",
]


@click.group("servers")
@connection_options
def servers() -> None:
    """Manage virtual servers exposed by the gateway."""


@servers.command("create")
@click.argument("name")
@click.option("--description", default=None, help="Human-readable description.")
@click.option("--tool", "tools", multiple=True, help="Tool (gateway name) to expose; repeatable.")
@click.option("--prompt", "prompts", multiple=True, help="Prompt to expose; repeatable.")
@click.option("--resource", "resources", multiple=True, help="Resource URI to expose; repeatable.")
@click.option("--upstream", "upstreams", multiple=True, help="Expose everything from this upstream; repeatable.")
@click.option("--prefix", type=click.Choice(PREFIX_MODES), default=None, help="Prefix names with the upstream.")
@api_command
def create(
    name: str,
    description: str | None,
    tools: tuple[str, ...],
    prompts: tuple[str, ...],
    resources: tuple[str, ...],
    upstreams: tuple[str, ...],
    prefix: str | None,
    api: Api,
) -> None:
    """Create a virtual server and print its MCP URL."""
    optional: dict[str, Any] = {
        "description": description,
        "tools": list(tools),
        "prompts": list(prompts),
        "resources": list(resources),
        "upstreams": list(upstreams),
        "prefix": prefix,
    }
    body: dict[str, Any] = {"name": name, **{key: value for key, value in optional.items() if value}}
    created = api.post("/api/v1/servers", body)
    emit(created, as_json=api.as_json, title=f"Server {name}")
    if not api.as_json and isinstance(created, dict) and created.get("url"):
        message(f"MCP endpoint: {created['url']}")


@servers.command("list")
@api_command
def list_servers(api: Api) -> None:
    """List virtual servers."""
    data = api.get("/api/v1/servers")
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=LIST_COLUMNS, title="servers")


@servers.command("show")
@click.argument("name")
@api_command
def show(name: str, api: Api) -> None:
    """Show one virtual server."""
    emit(api.get(f"/api/v1/servers/{seg(name)}"), as_json=api.as_json, title=f"Server {name}")


@servers.command("remove")
@click.argument("name")
@api_command
def remove(name: str, api: Api) -> None:
    """Remove a virtual server."""
    result = api.delete(f"/api/v1/servers/{seg(name)}")
    if api.as_json:
        emit(result if result is not None else {"removed": name}, as_json=True)
    else:
        message(f"Removed {name}")
