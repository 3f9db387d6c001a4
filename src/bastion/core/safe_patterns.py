"""Patterns from someone else's schema (an OpenAPI document, an upstream's tool) that a caller's text
is matched against, bounded: Python's `re` backtracks, so `^(a+)+$` and a key of thirty characters
hold the event loop for minutes. A pattern that may backtrack exponentially is not matched at all,
and neither is a key longer than MAX_KEY (which bounds what a polynomial pattern costs). Pure.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

MAX_KEY = 256
"""Longest property name a caller may give where a schema's patterns are matched against it."""
MAX_PATTERN = 1000
_COUNT = re.compile(r"\{\d*,\d*\}")


class UnsafeMatch(ValueError):
    """A caller's key that may not be matched, or a schema's pattern that may not be (the message says which)."""


@lru_cache(maxsize=1024)
def risky(pattern: str) -> bool:
    """Whether matching `pattern` may take exponential time: longer than MAX_PATTERN, or a group
    repeated without bound that itself repeats or alternates (`(a+)+`, `(a|ab)*`, `((a)*b)*`).
    Conservative: some patterns that match fast (`(ab|cd)+`) are counted too."""
    if len(pattern) > MAX_PATTERN:
        return True
    groups: list[bool] = []  # for each open group: whether it repeats or alternates within
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _class_end(pattern, i)
            continue
        if c == "(":
            groups.append(False)
            i += 2 if pattern[i + 1 : i + 2] == "?" else 1
            continue
        i += 1
        if c == ")":
            held = groups.pop() if groups else False
            repeated = _unbounded(pattern, i)
            if held and repeated:
                return True
            if groups:
                groups[-1] |= held or repeated
        elif groups and (c == "|" or _unbounded(pattern, i - 1)):
            groups[-1] = True
    return False


def _unbounded(pattern: str, i: int) -> bool:
    """Whether a quantifier without a fixed count starts at `i`."""
    return pattern[i : i + 1] in ("*", "+") or _COUNT.match(pattern, i) is not None


def _class_end(pattern: str, i: int) -> int:
    """Where the character class that opens at `i` ends (just past its `]`)."""
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def matches(pattern: str, key: str) -> bool:
    """Whether `key` matches the (ECMA-262) `pattern`, as Python reads it; one it cannot read matches
    nothing. Raises UnsafeMatch rather than match a key past MAX_KEY or a risky pattern."""
    if len(key) > MAX_KEY:
        raise UnsafeMatch(f"a key of {len(key)} characters is longer than the {MAX_KEY} a key may have here")
    if risky(pattern):
        raise UnsafeMatch(f"the schema's pattern {pattern[:80]!r} may take too long to match, so no key is matched against it")
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(key) is not None


def risky_patterns(schema: Any) -> bool:
    """Whether any `pattern` or `patternProperties` in `schema` (at any depth) is risky; walked without recursion."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str) and risky(node["pattern"]):
                return True
            by_pattern = node.get("patternProperties")
            if isinstance(by_pattern, dict) and any(risky(str(p)) for p in by_pattern):
                return True
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return False
