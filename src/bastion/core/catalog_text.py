"""Substring search over the catalog (REST `?q=`): each item's names and description, lowercased once.

Built once per snapshot instead of lowering every field of every item on every request.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.core.models import CatalogItem

_SEPARATOR = "\0"


def _fields(item: CatalogItem) -> tuple[str, ...]:
    return (item.gateway_name, item.original_name, item.name_override or "", item.key, item.description or "")


def matches(item: CatalogItem, query: str) -> bool:
    """Whether `query` occurs, case-insensitively, in one of the item's names or its description."""
    q = query.lower()
    return any(q in field.lower() for field in _fields(item))


class CatalogText:
    """The lowercased search text of each item, in the order of `items`."""

    def __init__(self, items: Sequence[CatalogItem]) -> None:
        self.items = items
        self._text = [_SEPARATOR.join(field.lower() for field in _fields(i)) for i in items]

    def hits(self, query: str) -> list[bool]:
        """For each item, whether `query` matches it (as `matches` decides)."""
        q = query.lower()
        if _SEPARATOR in q:  # could span two fields in the joined text: decide field by field
            return [matches(i, query) for i in self.items]
        return [q in text for text in self._text]
