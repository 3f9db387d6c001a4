"""`bastion connect SERVER`: a virtual server of a running Bastion, served on stdin/stdout.

For MCP clients that only launch local processes: each request goes to
`{BASTION_URL}/servers/SERVER/mcp` with `BASTION_TOKEN` as the bearer token.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from functools import partial

import anyio
import click

from bastion.cli.errors import sole_exception
from bastion.cli.forward import serve_stdio
from bastion.cli.http import connection_options, current_api, fail
from bastion.config import Settings
from bastion.core.client_config import CLIENTS, client_config
from bastion.core.errors import BastionError


@click.command()
@connection_options
@click.argument("server")
@click.option(
    "--print-config",
    "client",
    type=click.Choice(CLIENTS),
    default=None,
    help="Print a ready configuration block for this MCP client instead of serving.",
)
def connect(server: str, client: str | None) -> None:
    """Serve virtual server SERVER of a running Bastion over stdio (stdout carries only MCP)."""
    if client is not None:
        api = current_api()
        command = shutil.which("bastion") or "bastion"
        click.echo(json.dumps(client_config(client, server, api.url, api.token, command), indent=2))
        return
    logging.basicConfig(level=logging.WARNING, format="bastion connect: %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    api = current_api()
    settings = Settings()
    try:
        anyio.run(partial(serve_stdio, api.url, server, api.token, connect_timeout=settings.connect_timeout))
    except BaseException as exc:
        inner = sole_exception(exc)
        if isinstance(inner, BastionError):
            fail(inner.detail)
        if isinstance(inner, KeyboardInterrupt):
            raise SystemExit(130) from None
        raise
