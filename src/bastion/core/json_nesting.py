"""How deeply JSON from outside may nest, measured on its text before anything parses it.

The limit is far beyond any real configuration, tool schema, arguments or result, far below
Python's recursion limit, and below what upstream servers' parsers survive. It is the same for what
a client sends Bastion and what an upstream answers: `json.loads` recurses in C once per level and
relies on the process-wide recursion limit to stop, and the MCP SDK's parser gives up at about 200
levels, so a deeper answer was dropped and the call it answered waited out its whole deadline."""

from __future__ import annotations

import re
from itertools import accumulate

MAX_DEPTH = 64

# A string, or one that the text ends inside (a body read in part, which may end just after a
# backslash): matched to the end rather than failed there, which would try again from each escaped
# quote in it (quadratic).
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 for b in range(256)]


def body_too_deep(body: bytes | bytearray | str) -> bool:
    """Whether JSON text nests deeper than MAX_DEPTH, read from the text itself without parsing it
    (brackets inside strings do not count). Cheap for the common case: fewer brackets than the
    limit cannot nest past it."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def too_deep_detail(who: str) -> str:
    """Why a message from `who` (an upstream) was refused for its depth."""
    return f"{who} sent JSON nested deeper than {MAX_DEPTH} levels (Bastion's limit)"
