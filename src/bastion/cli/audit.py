"""`bastion audit ...`: read, export and verify the gateway's audit log."""

from __future__ import annotations

import json

import click

from bastion.cli.http import Api, api_command, connection_options, fail
from bastion.cli.output import Column, emit, items_of, message, terminal_text

LIST_COLUMNS: list[Column] = ["id", "at", "action", "target", "outcome", "actor_client", "actor_address", "latency_ms"]
_PAGE = 1000


def _filters(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


@click.group("audit")
@connection_options
def audit() -> None:
    """Read, export and verify the audit log."""


@audit.command("list")
@click.option("--since", default=None, help="From this time (ISO 8601).")
@click.option("--until", default=None, help="Before this time (ISO 8601).")
@click.option("--action", default=None, help="Only this action, e.g. tools/call or 'PATCH /api/v1/servers/{name}'.")
@click.option("--actor", default=None, help="Only this user id, token id or principal.")
@click.option("--target", default=None, help="Only this target (tool, server, upstream ...).")
@click.option("--outcome", default=None, help="ok, tool_error, upstream_error, denied, rate_limited ...")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Records to list (read a page of 1,000 at a time).")
@click.option("--cursor", default=None, help="The next_cursor of the previous listing.")
@api_command
def list_records(
    since: str | None, until: str | None, action: str | None, actor: str | None, target: str | None,
    outcome: str | None, limit: int, cursor: str | None, api: Api,
) -> None:
    """List audit records, newest first."""
    params = _filters(since=since, until=until, action=action, actor=actor, target=target, outcome=outcome)
    records: list[object] = []
    while True:  # the API serves at most _PAGE records a request
        page = {**params, "limit": str(min(limit - len(records), _PAGE)), **({"cursor": cursor} if cursor else {})}
        data = api.get("/api/v1/audit", params=page)
        records += items_of(data)
        cursor = data.get("next_cursor") if isinstance(data, dict) else None
        if not cursor or len(records) >= limit:
            break
    listed = {"items": records, "next_cursor": cursor}
    emit(listed if api.as_json else records, as_json=api.as_json, columns=LIST_COLUMNS, title="audit records")
    if not api.as_json and cursor:
        message(f"more: --cursor {cursor}")


@audit.command("export")
@click.option("--since", default=None, help="From this time (ISO 8601).")
@click.option("--until", default=None, help="Before this time (ISO 8601).")
@api_command
def export(since: str | None, until: str | None, api: Api) -> None:
    """Print every record (oldest first) as JSON lines, e.g. `bastion audit export --since 2026-12-01 > audit.jsonl`."""
    after = "0"
    while True:
        params = {**_filters(since=since, until=until), "after": after, "limit": str(_PAGE)}
        items = items_of(api.get("/api/v1/audit", params=params))
        for item in items:
            click.echo(terminal_text(json.dumps(item, ensure_ascii=False, separators=(",", ":"))))
        if len(items) < _PAGE:
            return
        after = str(items[-1]["id"])


@audit.command("verify")
@api_command
def verify(api: Api) -> None:
    """Check every chain's hashes, links and signed heads; exit 1 and name the first bad record if broken."""
    verdict = api.post("/api/v1/audit/verify")
    if api.as_json:
        emit(verdict, as_json=True)
    elif verdict.get("ok"):
        message(
            f"Audit log intact: {verdict['records']} records in {verdict['chains']} chains "
            f"({verdict['unsigned_tail']} written since the last signed head)."
        )
    if not verdict.get("ok"):
        first = verdict.get("first_bad") or {}
        fail(f"audit log is NOT intact: chain {first.get('chain')}, {first.get('reason')}")
