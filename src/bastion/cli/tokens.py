"""`bastion tokens ...`: create, list and revoke scoped API tokens (needs the admin token)."""

from __future__ import annotations

from typing import Any

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, emit, items_of, message

PERMISSIONS = ("mcp", "read")
LIST_COLUMNS: list[Column] = ["id", "name", "servers", "permissions", "expires_at", "revoked", "last_used_at"]
NOT_SHOWN_AGAIN = "Store this token now: it will not be shown again."


@click.group("tokens")
@connection_options
def tokens() -> None:
    """Manage scoped API tokens."""


@tokens.command("create")
@click.argument("name")
@click.option("--server", "servers", multiple=True, help="Virtual server the token may use; repeatable.")
@click.option("--all-servers", is_flag=True, help="Let the token use every virtual server.")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    type=click.Choice(PERMISSIONS),
    help="mcp: use the servers' MCP endpoints; read: GET the REST catalog. Repeatable; default mcp.",
)
@click.option("--expires-in", type=click.IntRange(min=1), default=None, metavar="SECONDS", help="Lifetime.")
@click.option("--ip", "ip_allow", multiple=True, metavar="CIDR", help="Allow only these client networks; repeatable.")
@api_command
def create(
    name: str,
    servers: tuple[str, ...],
    all_servers: bool,
    permissions: tuple[str, ...],
    expires_in: int | None,
    ip_allow: tuple[str, ...],
    api: Api,
) -> None:
    """Create a token and print its secret, once."""
    if all_servers and servers:
        raise click.UsageError("give either --server or --all-servers, not both")
    body: dict[str, Any] = {"name": name, "servers": "*" if all_servers else list(servers)}
    if permissions:
        body["permissions"] = list(dict.fromkeys(permissions))
    if expires_in is not None:
        body["expires_in"] = expires_in
    if ip_allow:
        body["ip_allow"] = list(ip_allow)
    created = api.post("/api/v1/tokens", body)
    if api.as_json:
        emit(created, as_json=True)
        click.echo(NOT_SHOWN_AGAIN, err=True)
        return
    secret = created.pop("token", None) if isinstance(created, dict) else None
    emit(created, as_json=False, title=f"Token {name}")
    message(f"Token: {secret}")
    message(NOT_SHOWN_AGAIN)


@tokens.command("list")
@api_command
def list_tokens(api: Api) -> None:
    """List API tokens (never their secrets)."""
    data = api.get("/api/v1/tokens")
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=LIST_COLUMNS, title="tokens")


@tokens.command("revoke")
@click.argument("token_id", metavar="ID")
@api_command
def revoke(token_id: str, api: Api) -> None:
    """Revoke a token: it is refused from the next request on."""
    result = api.delete(f"/api/v1/tokens/{seg(token_id)}")
    if api.as_json:
        emit(result if result is not None else {"revoked": token_id}, as_json=True)
    else:
        message(f"Revoked {token_id}")
