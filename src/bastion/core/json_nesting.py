"""How deeply JSON from outside may nest, measured on its text before anything parses it.

MAX_DEPTH (what a client sends Bastion) is far beyond any real configuration, tool schema,
arguments or result, far below Python's recursion limit, and below what upstream servers' parsers
survive: `json.loads` recurses in C once per level and relies on the process-wide recursion limit
to stop. What an upstream answers may nest up to UPSTREAM_MAX_DEPTH: its envelope (JSON-RPC, result,
tools, a tool) takes several levels before a schema's first, and the MCP SDK's parser gives up at
about 200 levels, dropping the message, so the call it answered waited out its whole deadline."""

from __future__ import annotations

import re
from itertools import accumulate

MAX_DEPTH = 64
UPSTREAM_MAX_DEPTH = 128

_NOT_QUOTES_OR_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')
_QUOTED = re.compile(rb'"[^"]*(?:"|\Z)')
_STEP = [1 if b in b"[{" else -1 for b in range(256)]


def body_too_deep(body: bytes | bytearray | str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests deeper than `limit`, read from the text itself without parsing it
    (brackets inside strings do not count). Cheap for the common case: fewer brackets than the
    limit cannot nest past it. Otherwise escapes go first (an escaped backslash, then an escaped
    quote: what is left of a backslash cannot end a string), then everything but quotes and brackets,
    then the strings: each step a pass in C over the text, rather than a regex over it that steps
    through every escape (several times a JSON parse on replies of a few KB)."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _QUOTED.sub(b"", data.translate(None, _NOT_QUOTES_OR_BRACKETS))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def too_deep_detail(who: str) -> str:
    """Why a message from `who` (an upstream) was refused for its depth."""
    return f"{who} sent JSON nested deeper than {UPSTREAM_MAX_DEPTH} levels (Bastion's limit)"
