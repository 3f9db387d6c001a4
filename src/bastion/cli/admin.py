"""`bastion admin reset-token`: a new admin token for a lost one, written straight to the database
(run where BASTION_DATABASE_URL reaches it; no running server or token needed)."""

from __future__ import annotations

import anyio
import click

from bastion.cli.errors import sole_exception
from bastion.cli.http import fail


async def _reset() -> str:
    from bastion.auth.tokens import ADMIN_TOKEN_KEY, hash_token, new_token
    from bastion.config import Settings
    from bastion.store.sql.migrate import upgrade
    from bastion.store.sql.repo import make_engine, set_secret_hash

    engine = make_engine(Settings().database_url)
    try:
        await upgrade(engine)
        token = new_token()
        await set_secret_hash(engine, ADMIN_TOKEN_KEY, hash_token(token))
        return token
    finally:
        await engine.dispose()


@click.group("admin")
def admin() -> None:
    """Recovery commands that work on the database directly."""


@admin.command("reset-token")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_token(yes: bool) -> None:
    """Replace the admin token (its hash in the database) and print the new one once.

    Restart every replica afterwards: a running Bastion keeps the token it loaded. A token set in
    BASTION_ADMIN_TOKEN always wins over the stored one.
    """
    from bastion.config import Settings

    if Settings().admin_token is not None:
        fail("BASTION_ADMIN_TOKEN is set: that token is the admin token; change the variable instead")
    if not yes:
        click.confirm("Replace the admin token? The current one stops working after a restart", abort=True)
    try:
        token = anyio.run(_reset)
    except BaseException as exc:
        inner = sole_exception(exc)
        if isinstance(inner, KeyboardInterrupt | SystemExit):
            raise
        fail(f"cannot write to the database ({type(inner).__name__})")
    click.echo(f"New admin token: {token}")
    click.echo("Store it now: it will not be shown again. Restart Bastion for it to take effect.", err=True)
