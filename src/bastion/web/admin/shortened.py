"""Text and JSON cut to what one page can show: an upstream writes its tools' schemas and descriptions,
and one with 100,000 properties (or nested hundreds deep, or a description of megabytes) made its page
tens of megabytes that took seconds to render, in the event loop. What is left out is said where it
was, by count; the API has the whole."""

from __future__ import annotations

from typing import Any

VALUES = 2_000
"""Values shown in all (each key with its value counts once): about 100 KB of indented JSON."""
DEPTH = 12
"""Objects and arrays nested deeper than this are said, not shown (a property of a property of a
property is 6 deep in a JSON Schema)."""
TEXT = 500
"""Characters of one string shown in the JSON."""


def clipped(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and how many more there are."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters not shown here)"


def shortened(value: Any, values: int = VALUES, depth: int = DEPTH) -> tuple[Any, bool]:
    """`value` with what is past `values` values or `depth` levels replaced by a note; and whether
    anything was left out."""
    budget = _Budget(values)
    return budget.cut(value, depth), budget.cut_any


class _Budget:
    def __init__(self, values: int) -> None:
        self.left = values
        self.cut_any = False

    def cut(self, value: Any, depth: int) -> Any:
        if isinstance(value, str) and len(value) > TEXT:
            self.cut_any = True
            return clipped(value, TEXT)
        if not isinstance(value, dict | list) or not value:
            return value
        if depth <= 0:
            self.cut_any = True
            return f"… {_count(value)} nested too deep to show here"
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, member in value.items():
                if self.left <= 0:
                    break
                self.left -= 1
                out[key] = self.cut(member, depth - 1)
            if len(out) < len(value):
                self.cut_any = True
                out["…"] = f"{len(value) - len(out):,} more properties not shown here"
            return out
        items: list[Any] = []
        for member in value:
            if self.left <= 0:
                break
            self.left -= 1
            items.append(self.cut(member, depth - 1))
        if len(items) < len(value):
            self.cut_any = True
            items.append(f"… {len(value) - len(items):,} more items not shown here")
        return items


def _count(value: dict[str, Any] | list[Any]) -> str:
    if isinstance(value, dict):
        return f"{len(value):,} propert{'y' if len(value) == 1 else 'ies'}"
    return f"{len(value):,} item{'' if len(value) == 1 else 's'}"
