"""`bastion approvals ...`: tool definitions that changed since an admin approved them (pinning)."""

from __future__ import annotations

import click

from bastion.cli.http import Api, api_command, connection_options, seg
from bastion.cli.output import Column, console, emit, message, terminal_text

LIST_COLUMNS: list[Column] = ["id", "upstream", "kind", "key", "change", "pin"]


@click.group("approvals")
@connection_options
def approvals() -> None:
    """Review new, changed and removed tool/prompt/resource definitions (rug-pull protection)."""


@approvals.command("list")
@click.option("--upstream", default=None, help="Only changes of this upstream.")
@click.option("--diff/--no-diff", "show_diff", default=True, help="Show each change's diff (default: on).")
@api_command
def list_approvals(upstream: str | None, show_diff: bool, api: Api) -> None:
    """List what waits for an admin's decision, with a diff of old and new definition."""
    data = api.get("/api/v1/approvals", params={"upstream": upstream} if upstream else None)
    if api.as_json:
        emit(data, as_json=True)
        return
    items = data.get("items", [])
    emit(items, as_json=False, columns=LIST_COLUMNS, title="approvals")
    if show_diff:
        for item in items:
            heading = f"{item['id']} {item['change']} {item['kind']} {item['key']!r} of {item['upstream']}"
            console().print("\n" + terminal_text(heading), style="bold", markup=False, highlight=False)
            console().print(terminal_text(item["diff"]), markup=False, highlight=False)
    message(f"{data.get('quarantined', 0)} quarantined, {data.get('flagged', 0)} flagged")


def _decide(api: Api, approval_id: str, verb: str) -> None:
    result = api.post(f"/api/v1/approvals/{seg(approval_id)}/{verb}")
    if api.as_json:
        emit(result, as_json=True)
    else:
        message(f"{verb.capitalize()}d {result['change']} {result['kind']} {result['key']!r} of {result['upstream']}")


@approvals.command("approve")
@click.argument("approval_id", nargs=-1, required=True)
@api_command
def approve(approval_id: tuple[str, ...], api: Api) -> None:
    """Approve changes by id: the current definition becomes the pinned one."""
    for one in approval_id:
        _decide(api, one, "approve")


@approvals.command("reject")
@click.argument("approval_id", nargs=-1, required=True)
@api_command
def reject(approval_id: tuple[str, ...], api: Api) -> None:
    """Reject changes by id: the item stays held until its upstream changes it again."""
    for one in approval_id:
        _decide(api, one, "reject")
