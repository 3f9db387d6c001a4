"""`bastion teams ...`: create and list teams, add members."""

from __future__ import annotations

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, emit, items_of

LIST_COLUMNS: list[Column] = ["name", "members", "created_at"]


@click.group("teams")
@connection_options
def teams() -> None:
    """Manage teams (admins) or list your own."""


@teams.command("create")
@click.argument("name")
@api_command
def create(name: str, api: Api) -> None:
    """Create a team."""
    emit(api.post("/api/v1/teams", {"name": name}), as_json=api.as_json, title=f"Team {name}")


@teams.command("list")
@api_command
def list_teams(api: Api) -> None:
    """List teams (yours, unless you are an admin)."""
    data = api.get("/api/v1/teams")
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=LIST_COLUMNS, title="teams")


@teams.command("add-member")
@click.argument("team")
@click.argument("user", metavar="USER")
@api_command
def add_member(team: str, user: str, api: Api) -> None:
    """Add a user (id or email) to a team."""
    emit(api.post(f"/api/v1/teams/{seg(team)}/members", {"user": user}), as_json=api.as_json, title=f"Team {team}")
