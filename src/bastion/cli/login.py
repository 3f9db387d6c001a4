"""`bastion login` / `bastion logout`: a session token for the CLI, stored per gateway URL (0600)."""

from __future__ import annotations

import sys

import click

from bastion.cli.credentials import drop_token, store_token, stored_token
from bastion.cli.http import Api, api_command, fail
from bastion.cli.output import emit, message


def read_password(from_stdin: bool, *, confirm: bool = False) -> str:
    """The password from one line of stdin, or typed at a hidden prompt."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on stdin")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@click.command("login")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of prompting.")
@api_command
def login(email: str, password_stdin: bool, api: Api) -> None:
    """Sign in; later commands use the session when BASTION_TOKEN is not set."""
    reply = Api(url=api.url).post("/api/v1/auth/login", {"email": email, "password": read_password(password_stdin)})
    path = store_token(api.url, reply["token"])
    shown = {k: v for k, v in reply.items() if k != "token"}
    if api.as_json:
        emit({**shown, "stored_in": str(path)}, as_json=True)
        return
    user = reply.get("user") or {}
    message(f"Signed in to {api.url} as {user.get('email')} ({user.get('role')}); until {reply.get('expires_at')}.")
    message(f"Session stored in {path}")


@click.command("logout")
@api_command
def logout(api: Api) -> None:
    """End the stored session for this gateway and forget it."""
    token = stored_token(api.url)
    if token is None:
        fail(f"not signed in to {api.url}")
    Api(url=api.url, token=token).post("/api/v1/auth/logout")
    drop_token(api.url)
    if api.as_json:
        emit({"signed_out": api.url}, as_json=True)
    else:
        message(f"Signed out of {api.url}")
