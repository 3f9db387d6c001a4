"""`bastion teams ...`: create, list, show and remove teams; add and remove members."""

from __future__ import annotations

from typing import Any

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, emit, items_of, message, short_id

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
    if api.as_json:
        emit(data, as_json=True)
        return
    emails = user_emails(api)
    emit([with_emails(emails, team) for team in items_of(data)], as_json=False, columns=LIST_COLUMNS, title="teams")


@teams.command("add-member")
@click.argument("team")
@click.argument("user", metavar="USER")
@api_command
def add_member(team: str, user: str, api: Api) -> None:
    """Add a user (id or email) to a team."""
    emit(api.post(f"/api/v1/teams/{seg(team)}/members", {"user": user}), as_json=api.as_json, title=f"Team {team}")


@teams.command("show")
@click.argument("name")
@api_command
def show(name: str, api: Api) -> None:
    """Show a team and its members."""
    team = api.get(f"/api/v1/teams/{seg(name)}")
    emit(team if api.as_json else with_emails(user_emails(api), team), as_json=api.as_json, title=f"Team {name}")


@teams.command("remove")
@click.argument("name")
@api_command
def remove(name: str, api: Api) -> None:
    """Delete a team (what it owns keeps its owner, loses the team)."""
    api.delete(f"/api/v1/teams/{seg(name)}")
    if api.as_json:
        emit({"removed": name}, as_json=True)
    else:
        message(f"Removed team {name}")


@teams.command("remove-member")
@click.argument("team")
@click.argument("user", metavar="USER")
@api_command
def remove_member(team: str, user: str, api: Api) -> None:
    """Take a user (id or email) out of a team."""
    api.delete(f"/api/v1/teams/{seg(team)}/members/{seg(user)}")
    if api.as_json:
        emit({"team": team, "removed": user}, as_json=True)
    else:
        message(f"Removed {user} from {team}")


def with_emails(emails: dict[str, str], team: Any) -> dict[str, Any]:
    """The team with its members shown by email where known, else by short id."""
    members = team.get("members") or []
    return {**team, "members": [emails.get(member) or short_id(member) for member in members]}


def user_emails(api: Api) -> dict[str, str]:
    """User id -> email, when the caller may read users (admins); empty otherwise."""
    try:
        users = items_of(api.get("/api/v1/users"))
    except click.ClickException:
        return {}
    return {str(u.get("id")): str(u.get("email")) for u in users}
