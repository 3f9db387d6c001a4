"""How deeply a request's JSON may nest. Far beyond any real configuration or tool arguments, far
below Python's recursion limit, and below what upstream servers' parsers survive (a deeply nested
argument otherwise crashes a shared upstream process for everyone)."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


def too_deep(value: Any) -> bool:
    """Whether parsed JSON nests deeper than MAX_DEPTH (iterative: no recursion of its own)."""
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            if level > MAX_DEPTH:
                return True
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


def body_too_deep(body: bytes) -> bool:
    """Whether a JSON body nests deeper than MAX_DEPTH; False for one that does not parse (its
    reader says why). Cheap for the common case: fewer brackets than the limit cannot nest past it."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    try:
        return too_deep(json.loads(body))
    except RecursionError:
        return True
    except ValueError:
        return False
