"""`bastion upstreams ...`: register, inspect and remove upstream MCP servers."""

from __future__ import annotations

from typing import Any

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, counts_line, emit, items_of, message, terminal_text

TRANSPORTS = ("streamable-http", "sse", "stdio", "openapi", "a2a")
ISOLATION = ("shared", "per_user", "per_session", "stateless")
PROTOCOLS = ("auto", "2025-11-25", "2026-07-28")
LIST_COLUMNS: list[Column] = [
    "name",
    "transport",
    "status",
    ("tools", lambda row: (row.get("counts") or {}).get("tools")),
    "last_seen",
]


def parse_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """Turn repeated KEY=VALUE options into a dict (values are never echoed back)."""
    pairs: dict[str, str] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter("expected KEY=VALUE (missing '=' or empty key)", ctx=ctx, param=param)
        pairs[key.strip()] = value
    return pairs


def _build_body(
    name: str,
    transport: str,
    url: str | None,
    command: str | None,
    args: tuple[str, ...],
    argv: tuple[str, ...],
    env: dict[str, str],
    headers: dict[str, str],
    isolation: str | None,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Validate the add options and build the POST body, omitting unset keys."""
    cmd_args = list(args)
    if argv:
        if command or cmd_args:
            raise click.UsageError("give the command either with --command/--arg or after '--', not both")
        command, cmd_args = argv[0], list(argv[1:])
    if transport == "stdio" and not command:
        raise click.UsageError("stdio upstreams need --command CMD or '-- CMD ARGS...'")
    if transport != "stdio":
        if not url:
            raise click.UsageError(f"{transport} upstreams need --url URL")
        if command or cmd_args:
            raise click.UsageError(f"{transport} upstreams take --url, not a command")
    body: dict[str, Any] = {"name": name, "transport": transport}
    optional: dict[str, Any] = {
        "url": url,
        "command": command,
        "args": cmd_args,
        "env": env,
        "headers": headers,
        "isolation": isolation,
        "protocol": protocol,
    }
    body.update({key: value for key, value in optional.items() if value})
    return body


def selection(values: tuple[str, ...]) -> dict[str, list[str]] | None:
    """OpenAPI operations picked on the command line: `tag:NAME`, a path glob (`/pets/*`), else an operationId."""
    if not values:
        return None
    picked: dict[str, list[str]] = {"operations": [], "tags": [], "paths": []}
    for value in values:
        if value.startswith("tag:"):
            picked["tags"].append(value[4:])
        elif value.startswith("/"):
            picked["paths"].append(value)
        else:
            picked["operations"].append(value)
    return {key: found for key, found in picked.items() if found}


def _oauth(
    token_url: str | None, client_id: str | None, client_secret: str | None, scope: str | None, audience: str | None
) -> dict[str, Any] | None:
    """The `auth` object for OAuth client credentials, or None when no --oauth-* option is given."""
    if not (token_url or client_id or client_secret or scope or audience):
        return None
    if not (token_url and client_id and client_secret):
        raise click.UsageError("OAuth needs --oauth-token-url, --oauth-client-id and --oauth-client-secret")
    auth: dict[str, str | None] = {"type": "oauth_client_credentials", "token_url": token_url, "client_id": client_id}
    auth |= {"client_secret": client_secret, "scope": scope, "audience": audience}
    return {key: value for key, value in auth.items() if value}


@click.group("upstreams")
@connection_options
def upstreams() -> None:
    """Manage upstream MCP servers."""


@upstreams.command("add")
@click.argument("name")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD [ARGS]...]")
@click.option("--transport", required=True, type=click.Choice(TRANSPORTS), help="How to reach the upstream.")
@click.option(
    "--url", "upstream_url", default=None,
    help="Upstream URL (streamable-http / sse), its OpenAPI document (openapi) or its agent card (a2a).",
)
@click.option("--base-url", default=None, help="openapi: where the API is served, if not where the document says.")
@click.option("--include", "include", multiple=True, metavar="OP", help="openapi: expose only these (operationId, tag:NAME, /path/glob).")
@click.option("--exclude", "exclude", multiple=True, metavar="OP", help="openapi: leave these out (same forms).")
@click.option("--command", default=None, help="Executable to launch (stdio).")
@click.option("--arg", "args", multiple=True, help="Argument for --command (repeatable).")
@click.option("--env", callback=parse_pairs, multiple=True, metavar="K=V", help="Environment variable (stdio).")
@click.option("--header", callback=parse_pairs, multiple=True, metavar="K=V", help="HTTP header (http/sse).")
@click.option("--isolation", type=click.Choice(ISOLATION), default=None, help="Session isolation mode.")
@click.option(
    "--protocol", type=click.Choice(PROTOCOLS), default=None, help="Protocol era to speak upstream (auto mirrors the caller's)."
)
@click.option("--oauth-token-url", default=None, help="OAuth client credentials: the token endpoint.")
@click.option("--oauth-client-id", default=None, help="OAuth client credentials: client id.")
@click.option(
    "--oauth-client-secret",
    default=None,
    envvar="BASTION_OAUTH_CLIENT_SECRET",
    help="OAuth client credentials: client secret (or env BASTION_OAUTH_CLIENT_SECRET; stored sealed, never shown).",
)
@click.option("--oauth-scope", default=None, help="OAuth client credentials: scope to ask for.")
@click.option("--oauth-audience", default=None, help="OAuth client credentials: audience to ask for.")
@click.option(
    "--pin",
    type=click.Choice(["block", "warn", "off"]),
    default=None,
    help="Changed/new definitions: hold until approved (block, the default), flag (warn), or pass (off).",
)
@api_command
def add(
    name: str,
    argv: tuple[str, ...],
    transport: str,
    upstream_url: str | None,
    base_url: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    command: str | None,
    args: tuple[str, ...],
    env: dict[str, str],
    header: dict[str, str],
    isolation: str | None,
    protocol: str | None,
    oauth_token_url: str | None,
    oauth_client_id: str | None,
    oauth_client_secret: str | None,
    oauth_scope: str | None,
    oauth_audience: str | None,
    pin: str | None,
    api: Api,
) -> None:
    """Register an upstream; for stdio, pass the command after `--`."""
    body = _build_body(name, transport, upstream_url, command, args, argv, env, header, isolation, protocol)
    if pin is not None:
        body["pin"] = pin
    if (base_url or include or exclude) and transport != "openapi":
        raise click.UsageError("--base-url, --include and --exclude are for --transport openapi")
    rest = {"base_url": base_url, "include": selection(include), "exclude": selection(exclude)}
    body.update({key: value for key, value in rest.items() if value})
    auth = _oauth(oauth_token_url, oauth_client_id, oauth_client_secret, oauth_scope, oauth_audience)
    if auth is not None:
        body["auth"] = auth
    created = api.post("/api/v1/upstreams", body)
    emit(created, as_json=api.as_json, title=f"Upstream {name}")
    if not api.as_json and isinstance(created, dict):
        message(f"Discovered {counts_line(created.get('counts'))}")


@upstreams.command("list")
@api_command
def list_upstreams(api: Api) -> None:
    """List registered upstreams."""
    data = api.get("/api/v1/upstreams")
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=LIST_COLUMNS, title="upstreams")


@upstreams.command("show")
@click.argument("name")
@api_command
def show(name: str, api: Api) -> None:
    """Show one upstream."""
    emit(api.get(f"/api/v1/upstreams/{seg(name)}"), as_json=api.as_json, title=f"Upstream {name}")


@upstreams.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even if servers still reference it.")
@api_command
def remove(name: str, force: bool, api: Api) -> None:
    """Remove an upstream."""
    result = api.delete(f"/api/v1/upstreams/{seg(name)}", params={"force": "true"} if force else None)
    if api.as_json:
        emit(result if result is not None else {"removed": name}, as_json=True)
    else:
        message(f"Removed {name}")


@upstreams.command("refresh")
@click.argument("name")
@api_command
def refresh(name: str, api: Api) -> None:
    """Re-discover an upstream's tools, prompts and resources."""
    result = api.post(f"/api/v1/upstreams/{seg(name)}/refresh")
    if api.as_json:
        emit(result, as_json=True)
        return
    counts = result.get("counts", result) if isinstance(result, dict) else None
    message(f"Refreshed {name}: {counts_line(counts)}")


@upstreams.command("connect")
@click.argument("name")
@api_command
def connect(name: str, api: Api) -> None:
    """Connect your own account to a per-user OAuth upstream: prints the URL to open in a browser."""
    result = api.post(f"/api/v1/upstreams/{seg(name)}/connect")
    if api.as_json:
        emit(result, as_json=True)
        return
    message(f"Open this URL in your browser to connect your account to {name}:")
    click.echo(terminal_text(str(result["authorization_url"])))


@upstreams.command("disconnect")
@click.argument("name")
@api_command
def disconnect(name: str, api: Api) -> None:
    """Forget your own account's tokens for a per-user OAuth upstream."""
    api.delete(f"/api/v1/upstreams/{seg(name)}/connection")
    if api.as_json:
        emit({"disconnected": name}, as_json=True)
    else:
        message(f"Disconnected your account from {name}")


VISIBILITY = ("private", "team", "public")


@upstreams.command("update")
@click.argument("name")
@click.option("--url", "upstream_url", default=None, help="New URL (streamable-http / sse).")
@click.option("--command", default=None, help="New executable (stdio; replaces the arguments too).")
@click.option("--arg", "args", multiple=True, help="Argument for the new --command (repeatable).")
@click.option("--env", callback=parse_pairs, multiple=True, metavar="K=V", help="Replace the environment (stdio).")
@click.option("--header", callback=parse_pairs, multiple=True, metavar="K=V", help="Replace the HTTP headers.")
@click.option("--clear-headers", is_flag=True, help="Remove every stored header.")
@click.option("--enable/--disable", "enabled", default=None, help="Connect it, or disconnect and hide its items.")
@click.option("--isolation", type=click.Choice(ISOLATION), default=None, help="Session isolation mode.")
@click.option("--team", default=None, help="Owning team ('' for none).")
@click.option("--visibility", type=click.Choice(VISIBILITY), default=None, help="Who may see it.")
@api_command
def update(
    name: str,
    upstream_url: str | None,
    command: str | None,
    args: tuple[str, ...],
    env: dict[str, str],
    header: dict[str, str],
    clear_headers: bool,
    enabled: bool | None,
    isolation: str | None,
    team: str | None,
    visibility: str | None,
    api: Api,
) -> None:
    """Change an upstream; only what is given changes (headers and env are replaced whole)."""
    if args and not command:
        raise click.UsageError("--arg goes with --command (the new command line)")
    if header and clear_headers:
        raise click.UsageError("give --header or --clear-headers, not both")
    body: dict[str, Any] = {}
    optional = {"url": upstream_url, "command": command, "isolation": isolation, "visibility": visibility}
    body.update({key: value for key, value in optional.items() if value is not None})
    if command is not None:
        body["args"] = list(args)
    if env:
        body["env"] = env
    if header or clear_headers:
        body["headers"] = header
    if enabled is not None:
        body["enabled"] = enabled
    if team is not None:
        body["team"] = team or None
    if not body:
        raise click.UsageError("nothing to change: see `bastion upstreams update --help`")
    updated = api.patch(f"/api/v1/upstreams/{seg(name)}", body)
    emit(updated, as_json=api.as_json, title=f"Upstream {name}")
