"""Entry point of the `bastion` command line."""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

import click
from pydantic import ValidationError

from bastion.cli.admin import admin
from bastion.cli.approvals import approvals
from bastion.cli.audit import audit
from bastion.cli.catalog import prompts, resources, tools
from bastion.cli.config import export, import_
from bastion.cli.http import connection_options
from bastion.cli.login import login, logout
from bastion.cli.registry import registry
from bastion.cli.servers import servers
from bastion.cli.status import cluster, health
from bastion.cli.teams import teams
from bastion.cli.tokens import tokens
from bastion.cli.upstreams import upstreams
from bastion.cli.usage import usage
from bastion.cli.users import users
from bastion.cli.vault import vault

LAZY_COMMANDS = {
    "serve": ("bastion.cli.serve", "serve"),
    "wrap": ("bastion.cli.wrap", "wrap"),
    "connect": ("bastion.cli.connect", "connect"),
}


def _version() -> str:
    """Installed package version, or a marker when running from a source tree."""
    try:
        return metadata.version("bastion")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


class BastionGroup(click.Group):
    """Root group that imports heavy commands (such as `serve`) only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """All eager commands plus the lazily imported ones."""
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Resolve a command, importing its module on first use."""
        if cmd_name in self.commands or cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, attr = LAZY_COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # not available in this build
            raise
        command: click.Command = getattr(module, attr)
        self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """A setting Bastion cannot take (BASTION_SESSION_TTL=-1) is one line naming it, not a traceback."""
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title != "Settings":
                raise
            raise click.ClickException(settings_problems(exc)) from None


def settings_problems(exc: ValidationError) -> str:
    """Each refused setting by its variable, with pydantic's reason (never its value: it may be a secret)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        name = "_".join(str(part) for part in error["loc"]).upper()
        problems.append(f"BASTION_{name}: {error['msg']}" if name else error["msg"])
    return "invalid settings: " + "; ".join(problems)


@click.group(cls=BastionGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="bastion")
@connection_options
def cli() -> None:
    """Bastion MCP gateway: run it (`serve`) or manage a running one over its REST API."""


cli.add_command(upstreams)
cli.add_command(tools)
cli.add_command(prompts)
cli.add_command(resources)
cli.add_command(approvals)
cli.add_command(registry)
cli.add_command(servers)
cli.add_command(tokens)
cli.add_command(vault)
cli.add_command(users)
cli.add_command(teams)
cli.add_command(login)
cli.add_command(logout)
cli.add_command(health)
cli.add_command(cluster)
cli.add_command(admin)
cli.add_command(audit)
cli.add_command(usage)
cli.add_command(export)
cli.add_command(import_)


if __name__ == "__main__":
    cli()
