"""Pages of a composed list, each sliced and JSON-encoded once per view.

A view (and each policy-filtered view of it) lives as long as its snapshot; a catalog change builds
new views, so pages are never stale. Encoding 500 large tool definitions dominated a list request:
a page here keeps its encoded form beside its items, and an edge that writes JSON itself splices it.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from bastion.core.json_encoders import json_encoder
from bastion.core.models import ItemKind
from bastion.core.paging import decode_cursor, encode_cursor


class EncodedPage(list[dict[str, Any]]):
    """A page's items (a plain list to every reader) with their compact JSON encoding."""

    __slots__ = ("_canonical", "encoded")

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        super().__init__(items)
        self.encoded = json.dumps(self, separators=(",", ":")).encode()
        self._canonical: bytes | None = None

    def canonical(self) -> bytes:
        """The canonical JSON (sorted keys, UTF-8) the audit log hashes, also encoded once."""
        if self._canonical is None:
            self._canonical = canonical_json(list(self))
        return self._canonical


_CANONICAL = json_encoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact, UTF-8: equal values encode equal. A page inside is encoded once. A lone
    surrogate (JSON allows `"\\ud800"`, Python keeps it) is encoded as its code unit, not refused."""
    if isinstance(value, EncodedPage):
        return value.canonical()
    if isinstance(value, dict):
        for inner in value.values():
            if isinstance(inner, EncodedPage):
                fields = (canonical_json(k) + b":" + canonical_json(value[k]) for k in sorted(value))
                return b"{" + b",".join(fields) + b"}"
    return _CANONICAL(value).encode("utf-8", "surrogatepass")


class ListPages:
    """The pages of every list of one view, built on first request."""

    def __init__(self, list_keys: Mapping[ItemKind, Sequence[str]], lists: Mapping[ItemKind, Sequence[dict[str, Any]]]) -> None:
        self._keys, self._lists = list_keys, lists
        self._pages: dict[tuple[ItemKind, int, int], tuple[EncodedPage, str | None]] = {}

    def page(self, kind: ItemKind, cursor: object | None, size: int) -> tuple[EncodedPage, str | None]:
        """The page after `cursor` (as core/paging.page slices it) and the cursor for the next one."""
        keys = self._keys.get(kind, ())
        start = 0 if cursor is None else bisect_right(keys, decode_cursor(cursor, kind))
        found = self._pages.get((kind, start, size))
        if found is None:
            end = start + size
            found = (EncodedPage(self._lists.get(kind, ())[start:end]), encode_cursor(kind, keys[end - 1]) if end < len(keys) else None)
            # Only pages our own cursors start (on page boundaries) are kept: a crafted or stale cursor
            # may start anywhere, and caching those would let a client grow the cache without bound.
            if start % size == 0:
                self._pages[(kind, start, size)] = found
        return found
