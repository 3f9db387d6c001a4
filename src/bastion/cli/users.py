"""`bastion users ...`: create and list users. With no token (before any server runs), `create`
writes straight to the database at BASTION_DATABASE_URL, which is how the first admin is made."""

from __future__ import annotations

import click

from bastion.cli.http import Api, api_command, connection_options, fail, seg
from bastion.cli.login import read_password
from bastion.cli.output import Column, emit, items_of, message, short_id

ROLES = ("admin", "developer", "viewer")
LIST_COLUMNS: list[Column] = [("id", lambda row: short_id(row.get("id"))), "email", "role", "active", "teams"]


@click.group("users")
@connection_options
def users() -> None:
    """Manage users (admins only)."""


async def _create_in_database(email: str, password: str, role: str) -> dict[str, object]:
    from bastion.auth.passwords import Passwords
    from bastion.config import Settings
    from bastion.control.users import Users
    from bastion.store.sql.identity import SqlIdentityRepo
    from bastion.store.sql.migrate import upgrade
    from bastion.store.sql.repo import make_engine
    from bastion.web.rest.users import user_json

    engine = make_engine(Settings().database_url)
    try:
        await upgrade(engine)
        user = await Users(SqlIdentityRepo(engine), Passwords()).add(email, password, role)  # type: ignore[arg-type]
        return user_json(user)
    finally:
        await engine.dispose()


def _direct(email: str, password: str, role: str) -> dict[str, object]:
    import anyio

    from bastion.cli.errors import sole_exception
    from bastion.core.errors import BastionError

    try:
        return anyio.run(_create_in_database, email, password, role)
    except BaseException as exc:
        inner = sole_exception(exc)
        if isinstance(inner, BastionError):
            fail(inner.detail)
        if isinstance(inner, KeyboardInterrupt | SystemExit):
            raise
        fail(f"cannot write to the database ({type(inner).__name__})")


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--admin", is_flag=True, help="Make the user an admin (same as --role admin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of prompting.")
@click.option(
    "--direct", is_flag=True, help="Write to BASTION_DATABASE_URL, not a server (automatic with no token or session)."
)
@api_command
def create(email: str, role: str, admin: bool, password_stdin: bool, direct: bool, api: Api) -> None:
    """Create a user."""
    role = "admin" if admin else role
    password = read_password(password_stdin, confirm=True)
    if direct or api.token is None:
        click.echo("No token given: writing to the database at BASTION_DATABASE_URL directly.", err=True)
        created = _direct(email, password, role)
    else:
        created = api.post("/api/v1/users", {"email": email, "password": password, "role": role})
    emit(created, as_json=api.as_json, title=f"User {email}")


@users.command("list")
@api_command
def list_users(api: Api) -> None:
    """List users."""
    data = api.get("/api/v1/users")
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=LIST_COLUMNS, title="users")


@users.command("show")
@click.argument("user", metavar="USER")
@api_command
def show(user: str, api: Api) -> None:
    """Show a user (id or email)."""
    emit(api.get(f"/api/v1/users/{seg(user)}"), as_json=api.as_json, title=f"User {user}")


@users.command("update")
@click.argument("user", metavar="USER")
@click.option("--role", type=click.Choice(ROLES), default=None, help="New role.")
@click.option("--activate/--deactivate", "active", default=None, help="Let the user sign in, or not.")
@click.option("--password-stdin", is_flag=True, help="Set a new password, read from stdin.")
@click.option("--password", "ask_password", is_flag=True, help="Set a new password, asked for at a prompt.")
@api_command
def update(user: str, role: str | None, active: bool | None, password_stdin: bool, ask_password: bool, api: Api) -> None:
    """Change a user's role, active flag or password (their sessions end)."""
    body: dict[str, object] = {}
    if role is not None:
        body["role"] = role
    if active is not None:
        body["active"] = active
    if password_stdin or ask_password:
        body["password"] = read_password(password_stdin, confirm=True)
    if not body:
        raise click.UsageError("nothing to change: give --role, --activate/--deactivate or a password option")
    emit(api.patch(f"/api/v1/users/{seg(user)}", body), as_json=api.as_json, title=f"User {user}")


@users.command("remove")
@click.argument("user", metavar="USER")
@api_command
def remove(user: str, api: Api) -> None:
    """Delete a user (id or email); their sessions and API tokens stop working."""
    api.delete(f"/api/v1/users/{seg(user)}")
    if api.as_json:
        emit({"removed": user}, as_json=True)
    else:
        message(f"Removed {user}")


GRANT_COLUMNS: list[Column] = [
    "id", ("client", lambda row: row.get("client_name") or row.get("client_id")), "resource", "created_at",
    "last_used_at", "expires_at",
]


@users.command("grants")
@click.argument("user", metavar="USER")
@api_command
def grants(user: str, api: Api) -> None:
    """List a user's OAuth grants (admins: anyone's; others: their own); never a token."""
    data = api.get(f"/api/v1/users/{seg(user)}/grants")
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=GRANT_COLUMNS, title=f"grants of {user}")


@users.command("revoke-grants")
@click.argument("user", metavar="USER")
@click.option("--grant", "grant", default=None, metavar="ID", help="End only this grant (an id from `users grants`).")
@api_command
def revoke_grants(user: str, grant: str | None, api: Api) -> None:
    """End a user's OAuth grants, or one: their refresh and access tokens stop working at once."""
    path = f"/api/v1/users/{seg(user)}/grants" + (f"/{seg(grant)}" if grant is not None else "")
    result = api.delete(path)
    ended = result.get("revoked", []) if isinstance(result, dict) else []
    if api.as_json:
        emit(result, as_json=True)
    else:
        message(f"Ended {len(ended)} grant{'s' if len(ended) != 1 else ''} of {user}")
