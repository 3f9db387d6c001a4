"""Render API responses as rich tables or as indented JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bastion.core.hidden_text import reveal

Getter = Callable[[Mapping[str, Any]], Any]
Column = str | tuple[str, str | Getter]


PIPE_WIDTH = 200
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")


def readable_time(value: str) -> str:
    """An ISO-8601 timestamp as `YYYY-MM-DD HH:MM` UTC (unchanged if it does not parse)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo is not None else "")


def short_id(value: Any) -> str:
    """A long id cut to its first 8 characters for tables; `--json` and `show` print it whole."""
    text = str(value or "")
    return text[:8] if len(text) > 12 else text or "-"


def console() -> Console:
    """A stdout console on the current sys.stdout; wide when piped so rows are never cropped."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=PIPE_WIDTH)


def terminal_text(text: str) -> str:
    """`text` as the CLI prints it: what strangers wrote (an upstream's tool descriptions, an identity
    provider's email, an upstream's error) may hold escape sequences that clear the screen, retitle
    the window or rewrite the line, and characters drawn as nothing or that reorder a line; each is
    written as its JSON escape (so JSON output stays JSON that decodes to the same text)."""
    return reveal(text).replace("\r", "\\r")


def print_json(data: Any) -> None:
    """Print data as JSON with 2-space indentation."""
    click.echo(terminal_text(json.dumps(data, indent=2, ensure_ascii=False)))


def fmt(value: Any) -> str:
    """Format one cell value for humans (ISO timestamps as `YYYY-MM-DD HH:MM` in UTC), as `terminal_text`."""
    return terminal_text(_fmt(value))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and _ISO_TIME.fullmatch(value):
        return readable_time(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        if all(not isinstance(v, (Mapping, list)) for v in value.values()):
            return ", ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "-"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        if all(isinstance(v, (str, int, float)) for v in value):
            return ", ".join(str(v) for v in value) or "-"
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def truncate(text: Any, limit: int = 60) -> str:
    """Shorten text to at most `limit` characters, ending with an ellipsis when cut."""
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _column(spec: Column) -> tuple[str, Getter]:
    """Normalise a column spec into (header, getter)."""
    if isinstance(spec, str):
        return spec, lambda row, key=spec: row.get(key)
    header, source = spec
    if isinstance(source, str):
        return header, lambda row, key=source: row.get(key)
    return header, source


def render_list(items: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, title: str | None = None) -> None:
    """Print a list of objects as a table with the given columns."""
    out = console()
    if not items:
        out.print(f"No {title or 'items'}.", markup=False)
        return
    specs = [_column(spec) for spec in columns]
    table = Table(title=Text(title) if title else None)
    for header, _ in specs:
        table.add_column(header, overflow="fold")
    for item in items:
        table.add_row(*(Text(fmt(getter(item))) for _, getter in specs))
    out.print(table)


def render_object(obj: Mapping[str, Any], *, title: str | None = None) -> None:
    """Print one object as a two-column key/value table."""
    table = Table(title=Text(title) if title else None, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in obj.items():
        table.add_row(Text(str(key)), Text(fmt(value)))
    console().print(table)


def emit(data: Any, *, as_json: bool, columns: Sequence[Column] | None = None, title: str | None = None) -> None:
    """Print data as JSON, a list table (when columns are given) or a key/value table."""
    if as_json:
        print_json(data)
    elif columns is not None:
        render_list(list(data or []), columns, title=title)
    elif isinstance(data, Mapping):
        render_object(data, title=title)
    else:
        click.echo(fmt(data))


def message(text: str) -> None:
    """Print a plain status line (as `terminal_text`, line breaks too: it may quote what the gateway
    said, and a quoted line break must not forge a line of its own)."""
    click.echo(terminal_text(text).replace("\n", "\\n"))


def counts_line(counts: Any) -> str:
    """Summarise a {kind: n} mapping like `3 tools, 1 prompts, 0 resources`."""
    if not isinstance(counts, Mapping) or not counts:
        return "no counts reported"
    parts = [f"{v} {k}" for k, v in counts.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(parts) or "no counts reported"


def items_of(data: Any) -> list[Mapping[str, Any]]:
    """Extract the `items` list from a collection response."""
    if isinstance(data, Mapping):
        data = data.get("items", [])
    return [item for item in (data or []) if isinstance(item, Mapping)]
