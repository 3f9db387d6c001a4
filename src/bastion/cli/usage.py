"""`bastion usage`: who uses which tools, prompts and resources, how often, how fast; and what nobody uses."""

from __future__ import annotations

import click

from bastion.cli.http import Api, api_command, connection_options, current_api, reading_answers
from bastion.cli.output import Column, emit, items_of

_FIGURES: list[Column] = ["calls", "errors", "p50_ms", "p95_ms", "distinct_callers", "last_used"]
_KEYS: dict[str, list[Column]] = {
    "item": ["item", "kind", "upstream", "server"],
    "server": ["server"],
    "upstream": ["upstream"],
    "minute": ["time"],
    "hour": ["time"],
    "day": ["time"],
}


def _show(api: Api, server: str | None, upstream: str | None, tool: str | None, since: str | None,
          until: str | None, group_by: str) -> None:
    params = {
        k: v
        for k, v in (("server", server), ("upstream", upstream), ("tool", tool), ("since", since), ("until", until),
                     ("group_by", group_by))
        if v
    }
    data = api.get("/api/v1/usage", params=params)
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=[*_KEYS[group_by], *_FIGURES], title="usage")


@click.group("usage", invoke_without_command=True)
@connection_options
@click.option("--server", default=None, help="Only this virtual server.")
@click.option("--upstream", default=None, help="Only this upstream.")
@click.option("--tool", default=None, help="Only this tool (or prompt, or resource).")
@click.option("--since", default=None, help="From this time (ISO 8601; default: a day ago).")
@click.option("--until", default=None, help="Until this time (ISO 8601; default: now).")
@click.option("--group-by", type=click.Choice(list(_KEYS)), default="item", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print raw JSON instead of tables.")
@click.pass_context
def usage(ctx: click.Context, server: str | None, upstream: str | None, tool: str | None, since: str | None,
          until: str | None, group_by: str, as_json: bool) -> None:
    """Calls, errors, p50/p95 latency, distinct callers and last use, added up over every replica."""
    if ctx.invoked_subcommand is None:
        api = current_api(as_json)
        with reading_answers(api):
            _show(api, server, upstream, tool, since, until, group_by)


@usage.command("unused")
@click.option("--days", type=float, default=30, show_default=True)
@api_command
def unused(days: float, api: Api) -> None:
    """Catalog items nobody called in the last DAYS days."""
    data = api.get("/api/v1/usage/unused", params={"days": str(days)})
    emit(data if api.as_json else items_of(data), as_json=api.as_json, columns=["kind", "name", "upstream", "enabled"],
         title="unused items")
