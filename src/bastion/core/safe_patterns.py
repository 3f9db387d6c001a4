"""Patterns from someone else's schema (an OpenAPI document, an upstream's tool) that a caller's text
is matched against, bounded: Python's `re` backtracks, so `^(a+)+$` and a key of thirty characters
hold the event loop for minutes, and `(.*a){12}x` or `.*.*.*.*.*x` are polynomial enough to do the
same. Patterns are matched with RE2 (google-re2), in time linear in the text, whatever the pattern.
One RE2 cannot read (lookaround, backreferences) is not matched at all. Pure.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import re2

MAX_KEY = 256
"""Longest property name a caller may give where a schema's patterns are matched against it."""


class UnsafeMatch(ValueError):
    """A caller's key that may not be matched, or a schema's pattern that may not be (the message says which)."""


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a pattern RE2 cannot read is an answer here, not a line on stderr


@lru_cache(maxsize=4096)
def linear(pattern: str) -> Any | None:
    """`pattern` compiled by RE2 (matching in linear time), or None if RE2 cannot read it."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except (re2.error, TypeError, ValueError):
        return None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def matches(pattern: str, key: str) -> bool:
    """Whether `key` matches the (ECMA-262) `pattern`, by RE2. Raises UnsafeMatch rather than match a
    key past MAX_KEY, or with a pattern RE2 cannot read (only a backtracking engine could)."""
    if len(key) > MAX_KEY:
        raise UnsafeMatch(f"a key of {len(key)} characters is longer than the {MAX_KEY} a key may have here")
    fast = linear(pattern)
    if fast is None:
        if _compiled(pattern) is None:
            return False  # not a pattern at all: it matches nothing
        raise UnsafeMatch(f"the schema's pattern {pattern[:80]!r} cannot be matched in bounded time, so no key is matched against it")
    return fast.search(key) is not None


def risky_patterns(schema: Any) -> bool:
    """Whether any `pattern` or `patternProperties` in `schema` (at any depth) is one RE2 cannot read
    (only Python's backtracking `re` could match it); walked without recursion."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str) and _slow(node["pattern"]):
                return True
            by_pattern = node.get("patternProperties")
            if isinstance(by_pattern, dict) and any(_slow(str(p)) for p in by_pattern):
                return True
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return False


def _slow(pattern: str) -> bool:
    return linear(pattern) is None
