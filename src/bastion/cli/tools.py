"""`bastion tools ...`: browse the tool catalog and switch tools on or off."""

from __future__ import annotations

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, emit, items_of, message, truncate

LIST_COLUMNS: list[Column] = [
    "name",
    "upstream",
    "enabled",
    ("description", lambda row: truncate(row.get("description"), 60)),
]


@click.group("tools")
@connection_options
def tools() -> None:
    """Browse and toggle tools discovered from upstreams."""


@tools.command("list")
@click.option("--search", "query", default=None, help="Filter by text in name or description.")
@click.option("--upstream", default=None, help="Only tools from this upstream.")
@api_command
def list_tools(query: str | None, upstream: str | None, api: Api) -> None:
    """List tools in the catalog."""
    params = {key: value for key, value in (("q", query), ("upstream", upstream)) if value}
    data = api.get("/api/v1/tools", params=params)
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=LIST_COLUMNS, title="tools")


def _set_enabled(api: Api, name: str, enabled: bool) -> None:
    """PATCH a tool's enabled flag and report the result."""
    result = api.patch(f"/api/v1/tools/{seg(name)}", {"enabled": enabled})
    if api.as_json:
        emit(result if result is not None else {"name": name, "enabled": enabled}, as_json=True)
    else:
        message(f"{'Enabled' if enabled else 'Disabled'} {name}")


@tools.command("enable")
@click.argument("name")
@api_command
def enable(name: str, api: Api) -> None:
    """Enable a tool by its gateway name."""
    _set_enabled(api, name, True)


@tools.command("disable")
@click.argument("name")
@api_command
def disable(name: str, api: Api) -> None:
    """Disable a tool by its gateway name."""
    _set_enabled(api, name, False)


DUPLICATE_COLUMNS: list[Column] = [
    ("tools", lambda row: ", ".join(row.get("tools", []))),
    "score",
    ("reason", lambda row: truncate(row.get("reason"), 90)),
]


@tools.command("duplicates")
@click.option("--upstream", default=None, help="Only groups that include this upstream.")
@api_command
def duplicates(upstream: str | None, api: Api) -> None:
    """Groups of tools on different upstreams that look like the same job (name, description, schema)."""
    data = api.get("/api/v1/catalog/duplicates", params={"upstream": upstream} if upstream else None)
    emit(data if api.as_json else data.get("groups", []), as_json=api.as_json, columns=DUPLICATE_COLUMNS, title="duplicate tools")
