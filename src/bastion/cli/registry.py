"""`bastion registry ...`: MCP Registry sources, search, and one-step install as an upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, emit, items_of, message, truncate
from bastion.cli.upstreams import parse_pairs

SOURCE_COLUMNS: list[Column] = ["name", "url", "path", "entries", "refreshed_at", "error"]
ENTRY_COLUMNS: list[Column] = [
    "name", "version", "source", ("description", lambda row: truncate(row.get("description"), 50)),
    ("installs as", lambda row: ", ".join(row.get("remotes", []) + row.get("packages", []))),
]


@click.group("registry")
@connection_options
def registry() -> None:
    """Browse MCP Registries and install their servers as upstreams."""


@registry.command("add")
@click.argument("name")
@click.argument("location")
@api_command
def add(name: str, location: str, api: Api) -> None:
    """Add a source: an MCP Registry API base URL, or a local file/directory of server.json documents."""
    is_url = location.startswith(("http://", "https://"))
    body = {"name": name, "url": location} if is_url else {"name": name, "path": str(Path(location).resolve())}
    created = api.post("/api/v1/registries", body)
    emit(created, as_json=api.as_json, title=f"Registry source {name}")


@registry.command("list")
@api_command
def list_sources(api: Api) -> None:
    """List registry sources and how fresh their cached listings are."""
    data = api.get("/api/v1/registries")
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=SOURCE_COLUMNS, title="registry sources")


@registry.command("search")
@click.argument("text", default="")
@click.option("--source", default=None, help="Only this registry source.")
@click.option("--limit", default=50, show_default=True, help="At most this many results.")
@api_command
def search(text: str, source: str | None, limit: int, api: Api) -> None:
    """Search the cached listings (latest versions) by name, title and description."""
    params = {"q": text, "limit": str(limit), **({"source": source} if source else {})}
    data = api.get("/api/v1/registries/search", params=params)
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=ENTRY_COLUMNS, title="registry entries")


@registry.command("show")
@click.argument("source")
@click.argument("server")
@click.option("--version", default=None, help="A version (default: the latest).")
@api_command
def show(source: str, server: str, version: str | None, api: Api) -> None:
    """Show one entry: its versions and the values installing it needs."""
    params = {"server": server, **({"version": version} if version else {})}
    emit(api.get(f"/api/v1/registries/{seg(source)}/entry", params=params), as_json=api.as_json, title=server)


@registry.command("refresh")
@click.argument("source")
@click.option("--full", is_flag=True, help="Fetch the whole listing, not only what changed.")
@api_command
def refresh(source: str, full: bool, api: Api) -> None:
    """Refresh a source's cached listing now."""
    done = api.request("POST", f"/api/v1/registries/{seg(source)}/refresh", params={"full": "true"} if full else None)
    emit(done, as_json=api.as_json, title=f"Registry source {source}")


@registry.command("remove")
@click.argument("source")
@api_command
def remove(source: str, api: Api) -> None:
    """Remove a source and its cached listing (installed upstreams stay)."""
    api.delete(f"/api/v1/registries/{seg(source)}")
    message(f"Removed registry source {source}")


@registry.command("updates")
@api_command
def updates(api: Api) -> None:
    """Installed upstreams whose registry entry has a newer version."""
    data = api.get("/api/v1/registries/updates")
    columns: list[Column] = ["upstream", "server", "version", "latest", "source"]
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=columns, title="updates")


def _ask(requirements: list[dict[str, Any]], given: dict[str, str]) -> dict[str, str]:
    """Prompt for required values not given with --value; secret ones are typed without echo."""
    values = dict(given)
    for need in requirements:
        name = need["name"]
        if name in values or not need.get("required") or need.get("default") is not None:
            continue
        label = f"{name} ({need['target']})" + (f": {need['description']}" if need.get("description") else "")
        values[name] = click.prompt(label, hide_input=bool(need.get("secret")), type=str)
    return values


@registry.command("install")
@click.argument("source")
@click.argument("server")
@click.option("--name", "upstream", default=None, help="Upstream name (default: from the server name).")
@click.option("--version", default=None, help="A version (default: the latest).")
@click.option("--value", "values", callback=parse_pairs, multiple=True, metavar="K=V", help="An env var, header or argument.")
@click.option("--prefer", type=click.Choice(["remote", "package"]), default=None, help="Install the remote or the package.")
@click.option("--pin", type=click.Choice(["block", "warn", "off"]), default=None, help="Pin mode (default block).")
@click.option("--team", default=None, help="Owning team.")
@api_command
def install(
    source: str, server: str, upstream: str | None, version: str | None, values: dict[str, str],
    prefer: str | None, pin: str | None, team: str | None, api: Api,
) -> None:
    """Install a registry entry as an upstream in one step; asks for required values."""
    params = {"server": server, **({"version": version} if version else {})}
    entry = api.get(f"/api/v1/registries/{seg(source)}/entry", params=params)
    body: dict[str, Any] = {"server": server, "values": _ask(entry.get("requirements", []), values)}
    optional = {"name": upstream, "version": version, "prefer": prefer, "pin": pin, "team": team}
    body.update({k: v for k, v in optional.items() if v is not None})
    created = api.post(f"/api/v1/registries/{seg(source)}/install", body)
    emit(created, as_json=api.as_json, title=f"Upstream {created.get('name')}")
    if not api.as_json:
        message(f"Installed {server} {created.get('origin', {}).get('version')} as upstream {created.get('name')}")
