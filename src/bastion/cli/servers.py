"""`bastion servers ...`: compose virtual MCP servers from upstream capabilities."""

from __future__ import annotations

import json
from typing import Any

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, emit, items_of, message

PREFIX_MODES = ("always", "never")
VISIBILITY = ("private", "team", "public")
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
@click.option("--policy", "policy_file", type=click.File("r"), default=None, help="Per-tool policy, a JSON file ('-': stdin).")
@click.option("--rate-limits", "limits_file", type=click.File("r"), default=None, help="Rate limits, a JSON file.")
@click.option("--team", default=None, help="Owning team.")
@click.option("--visibility", type=click.Choice(VISIBILITY), default=None, help="Who may see it.")
@api_command
def create(
    name: str,
    description: str | None,
    tools: tuple[str, ...],
    prompts: tuple[str, ...],
    resources: tuple[str, ...],
    upstreams: tuple[str, ...],
    prefix: str | None,
    policy_file: Any,
    limits_file: Any,
    team: str | None,
    visibility: str | None,
    api: Api,
) -> None:
    """Create a virtual server and print its MCP URL."""
    optional: dict[str, Any] = {
        "policy": _read_json(policy_file, "policy") if policy_file is not None else None,
        "rate_limits": _read_json(limits_file, "rate limits") if limits_file is not None else None,
        "team": team,
        "visibility": visibility,
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


def _read_json(source: Any, what: str) -> Any:
    try:
        return json.load(source)
    except ValueError as exc:
        raise click.BadParameter(f"the {what} is not valid JSON ({exc})", param_hint=what) from None


@servers.command("policy")
@click.argument("name")
@click.argument("policy_file", type=click.File("r"), required=False)
@click.option("--clear", is_flag=True, help="Remove the policy: every caller sees everything the server composes.")
@api_command
def set_policy(name: str, policy_file: Any, clear: bool, api: Api) -> None:
    """Replace a virtual server's per-tool policy with the JSON in POLICY_FILE ('-': stdin).

    \b
    {"default": "deny", "rules": [
      {"effect": "allow", "teams": ["data"], "tools": ["db__*"]},
      {"effect": "deny", "roles": ["viewer"], "tools": ["*__delete*"]}]}
    Rules apply in order; the first matching caller and item decides; subjects: users, teams,
    roles, tokens (ids); items: tools, prompts, resources (globs).
    """
    if clear == (policy_file is not None):
        raise click.UsageError("give a policy file or --clear, not both or neither")
    updated = api.patch(f"/api/v1/servers/{seg(name)}", {"policy": None if clear else _read_json(policy_file, "policy")})
    if api.as_json:
        emit(updated, as_json=True)
    else:
        message(f"Policy of {name} {'removed' if clear else 'replaced'}")


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


def _edited(current: list[str], add: tuple[str, ...], remove: tuple[str, ...], what: str) -> list[str] | None:
    """The list after adding and removing names; None when neither was asked."""
    if not add and not remove:
        return None
    missing = [name for name in remove if name not in current]
    if missing:
        raise click.UsageError(f"{what} not on the server: {', '.join(missing)}")
    kept = [name for name in current if name not in remove]
    return kept + [name for name in add if name not in kept]


@servers.command("update")
@click.argument("name")
@click.option("--description", default=None, help="New description ('' to clear).")
@click.option("--add-tool", multiple=True, help="Expose this tool (gateway name); repeatable.")
@click.option("--remove-tool", multiple=True, help="Stop exposing this tool; repeatable.")
@click.option("--add-prompt", multiple=True, help="Expose this prompt; repeatable.")
@click.option("--remove-prompt", multiple=True, help="Stop exposing this prompt; repeatable.")
@click.option("--add-resource", multiple=True, help="Expose this resource; repeatable.")
@click.option("--remove-resource", multiple=True, help="Stop exposing this resource; repeatable.")
@click.option("--add-upstream", multiple=True, help="Expose everything from this upstream; repeatable.")
@click.option("--remove-upstream", multiple=True, help="Stop exposing this whole upstream; repeatable.")
@click.option("--prefix", type=click.Choice(PREFIX_MODES), default=None, help="Prefix names with the upstream.")
@click.option("--rate-limits", "limits_file", type=click.File("r"), default=None, help="Replace rate limits (JSON file).")
@click.option("--clear-rate-limits", is_flag=True, help="Remove the server's own rate limits.")
@click.option("--team", default=None, help="Owning team ('' for none).")
@click.option("--visibility", type=click.Choice(VISIBILITY), default=None, help="Who may see it.")
@api_command
def update(name: str, limits_file: Any, clear_rate_limits: bool, api: Api, **edits: Any) -> None:
    """Change a virtual server: add or remove items, set its description, prefix, limits, owner."""
    if limits_file is not None and clear_rate_limits:
        raise click.UsageError("give --rate-limits or --clear-rate-limits, not both")
    current = api.get(f"/api/v1/servers/{seg(name)}")
    body: dict[str, Any] = {}
    for field in ("tools", "prompts", "resources", "upstreams"):
        singular = field[:-1]
        edited = _edited(current.get(field) or [], edits[f"add_{singular}"], edits[f"remove_{singular}"], field)
        if edited is not None:
            body[field] = edited
    if edits["description"] is not None:
        body["description"] = edits["description"] or None
    for field in ("prefix", "visibility"):
        if edits[field] is not None:
            body[field] = edits[field]
    if edits["team"] is not None:
        body["team"] = edits["team"] or None
    if limits_file is not None or clear_rate_limits:
        body["rate_limits"] = None if clear_rate_limits else _read_json(limits_file, "rate limits")
    if not body:
        raise click.UsageError("nothing to change: see `bastion servers update --help`")
    updated = api.patch(f"/api/v1/servers/{seg(name)}", body)
    emit(updated, as_json=api.as_json, title=f"Server {name}")
