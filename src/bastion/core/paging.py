"""Gateway-minted cursors over the composed, sorted lists of a virtual server.

Keyset paging: a cursor names the last key a page returned, so the next page starts after it
even if the list changed in between (nothing is skipped or repeated that stayed in place).
Cursors are opaque to clients; a malformed one is a BadRequest.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from bastion.core.errors import BadRequest

_PREFIX = "b1:"


def encode_cursor(kind: str, last_key: str) -> str:
    raw = f"{_PREFIX}{kind}:{last_key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: object, kind: str) -> str:
    """The last key of the previous page; BadRequest if the cursor is not one of ours for `kind`."""
    if not isinstance(cursor, str) or not cursor:
        raise BadRequest("cursor must be a non-empty string returned as nextCursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("invalid cursor") from None
    head = f"{_PREFIX}{kind}:"
    if not raw.startswith(head):
        raise BadRequest("invalid cursor for this list")
    return raw[len(head) :]


def page(
    kind: str, keys: Sequence[str], items: Sequence[dict[str, Any]], cursor: object | None, size: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `items` (sorted by `keys`) after `cursor`, and the cursor for the next page."""
    start = 0 if cursor is None else bisect_right(keys, decode_cursor(cursor, kind))
    end = start + size
    chunk = list(items[start:end])
    next_cursor = encode_cursor(kind, keys[end - 1]) if end < len(keys) else None
    return chunk, next_cursor
