"""`bastion export` and `bastion import`: the configuration as a YAML document (configuration as code).

Secrets are never written: an export names a variable for each (`${BASTION_SECRET_...}`). An import
resolves those references from this process's environment before sending the document; a reference
left unresolved keeps the secret already stored for that upstream (and is refused for a new one).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from bastion.cli.http import Api, api_command, fail
from bastion.cli.output import message, print_json
from bastion.core.config_doc import dump, read_document, resolve_references
from bastion.core.errors import BadRequest


@click.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None, help="Write to FILE instead of stdout.")
@api_command
def export(output: str | None, api: Api) -> None:
    """Print the configuration as YAML (upstreams, servers, teams, registry sources); secrets as ${VARIABLE}."""
    data = api.get("/api/v1/config")
    if api.as_json:
        text = json.dumps(data, indent=2) + "\n"
    else:
        # To a terminal, every character past ASCII is written as a YAML escape (the same value):
        # an upstream's or a person's text may hide bidi controls and zero-width characters.
        to_terminal = output is None and sys.stdout.isatty()
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=not to_terminal)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    message(f"Wrote {output}")


def load_file(path: str) -> dict[str, Any]:
    """Read and check the document, resolve secret references from the environment: plain data to send."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        fail(f"{path} is not UTF-8 text (byte {exc.start})")
    try:
        doc = read_document(text)
    except BadRequest as exc:
        fail(f"{path}: {exc.detail}", title="Bad request", detail=exc.detail, status=400)
    return dump(resolve_references(doc, os.environ))


@click.command("import")
@click.argument("path", metavar="FILE")
@click.option("--dry-run", is_flag=True, help="Only print what would change.")
@click.option("--prune", is_flag=True, help="Also delete what the file does not list.")
@api_command
def import_(path: str, dry_run: bool, prune: bool, api: Api) -> None:
    """Bring the configuration to FILE (idempotent); prints the changes (+ create, ~ update, - delete)."""
    body = load_file(path)
    params = f"?dry_run={str(dry_run).lower()}&prune={str(prune).lower()}"
    reply = api.post(f"/api/v1/config{params}", body)
    if api.as_json:
        print_json(reply)
        return
    actions = reply.get("actions", [])
    for action in actions:
        message(str(action["line"]))
    if not actions:
        message("Nothing to change: the configuration already matches the file.")
    elif dry_run:
        message(f"{len(actions)} change(s) would be applied (dry run: nothing changed).")
    else:
        message(f"{len(actions)} change(s) applied.")
