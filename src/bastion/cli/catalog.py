"""`bastion tools|prompts|resources ...`: browse the catalog, show one item, switch items on or off,
rename or redescribe them (by their gateway name; resources by URI)."""

from __future__ import annotations

from typing import Any

import click

from bastion.cli.call import call
from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, emit, items_of, message, truncate

_LIST_COLUMNS: list[Column] = [
    "name",
    "upstream",
    "enabled",
    ("description", lambda row: truncate(row.get("description"), 60)),
]
_RESOURCE_COLUMNS: list[Column] = [
    ("uri", lambda row: row.get("uri") or row.get("uri_template")),
    "name",
    "upstream",
    "enabled",
    ("mime type", "mime_type"),
]


def catalog_group(collection: str, noun: str, key: str) -> click.Group:
    """The command group for one catalog collection (`tools`, `prompts`, `resources`)."""

    @click.group(collection)
    @connection_options
    def group() -> None:
        pass

    group.help = f"Browse and change the {noun}s discovered from upstreams."
    columns = _RESOURCE_COLUMNS if collection == "resources" else _LIST_COLUMNS

    @group.command("list")
    @click.option("--search", "query", default=None, help="Filter by text in name or description.")
    @click.option("--upstream", default=None, help=f"Only {noun}s from this upstream.")
    @api_command
    def list_items(query: str | None, upstream: str | None, api: Api) -> None:
        params = {k: v for k, v in (("q", query), ("upstream", upstream)) if v}
        data = api.get(f"/api/v1/{collection}", params=params)
        emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=columns, title=collection)

    list_items.help = f"List {noun}s in the catalog."

    @group.command("show")
    @click.argument("name", metavar=key)
    @api_command
    def show(name: str, api: Api) -> None:
        emit(api.get(f"/api/v1/{collection}/{seg(name)}"), as_json=api.as_json, title=f"{noun.capitalize()} {name}")

    show.help = f"Show one {noun} with its full definition."

    def patch(api: Api, name: str, body: dict[str, Any], said: str) -> None:
        result = api.patch(f"/api/v1/{collection}/{seg(name)}", body)
        if api.as_json:
            emit(result, as_json=True)
        else:
            message(said)

    @group.command("enable")
    @click.argument("name", metavar=key)
    @api_command
    def enable(name: str, api: Api) -> None:
        patch(api, name, {"enabled": True}, f"Enabled {name}")

    @group.command("disable")
    @click.argument("name", metavar=key)
    @api_command
    def disable(name: str, api: Api) -> None:
        patch(api, name, {"enabled": False}, f"Disabled {name}")

    enable.help, disable.help = f"Enable a {noun}.", f"Disable a {noun}: no virtual server exposes it."

    @group.command("update")
    @click.argument("name", metavar=key)
    @click.option("--rename", "new_name", default=None, help="Expose it under this name ('' restores the upstream's).")
    @click.option("--description", default=None, help="Show this description ('' restores the upstream's).")
    @api_command
    def update(name: str, new_name: str | None, description: str | None, api: Api) -> None:
        body: dict[str, Any] = {}
        if new_name is not None:
            body["name"] = new_name or None
        if description is not None:
            body["description"] = description or None
        if not body:
            raise click.UsageError("nothing to change: give --rename and/or --description")
        patch(api, name, body, f"Updated {name}")

    update.help = f"Rename or redescribe a {noun} (only tools and prompts can be renamed)."
    return group


tools = catalog_group("tools", "tool", "NAME")
tools.add_command(call)
prompts = catalog_group("prompts", "prompt", "NAME")
resources = catalog_group("resources", "resource", "NAME")


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
