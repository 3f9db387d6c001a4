"""How deeply a request's JSON may nest. Far beyond any real configuration or tool arguments, far
below Python's recursion limit, and below what upstream servers' parsers survive (a deeply nested
argument otherwise crashes a shared upstream process for everyone).

The depth is measured on the bytes, before anything parses them: `json.loads` recurses in C once per
level and relies on the interpreter's recursion limit to stop, and that limit is process-wide (a
library or a test runner that raises it would let a deep body overflow a thread's C stack)."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 for b in range(256)]


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"the JSON nests deeper than {MAX_DEPTH} levels")


def body_too_deep(body: bytes | bytearray | str) -> bool:
    """Whether JSON text nests deeper than MAX_DEPTH, read from the text itself without parsing it
    (brackets inside strings do not count). Cheap for the common case: fewer brackets than the
    limit cannot nest past it."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def loads(body: bytes | bytearray | str) -> Any:
    """`json.loads` for text from outside: TooDeep (a ValueError) before parsing anything nested
    past MAX_DEPTH, so no caller depends on a RecursionError to stop it."""
    if body_too_deep(body):
        raise TooDeep()
    return json.loads(body)
