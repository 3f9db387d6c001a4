"""`bastion vault ...`: rotate the key that wraps stored credentials (needs the admin token)."""

from __future__ import annotations

import click

from bastion.cli.http import Api, api_command, connection_options, fail
from bastion.cli.output import emit, message


@click.group("vault")
@connection_options
def vault() -> None:
    """The credential vault."""


@vault.command("rotate")
@api_command
def rotate(api: Api) -> None:
    """Re-wrap every stored secret under the gateway's current vault key.

    Start every replica with the new BASTION_VAULT_KEY and the old one in BASTION_VAULT_PREVIOUS_KEYS,
    run this once, then the old key may be dropped.
    """
    report = api.post("/api/v1/vault/rotate")
    if api.as_json:
        emit(report, as_json=True)
        return
    message(
        f"Re-wrapped {report['rewrapped']} secret(s) under key {report['key_id']} "
        f"({report['already_current']} already current)"
    )
    if report["failed"]:
        fail(f"could not open (left as they were): {', '.join(report['failed'])}")
