"""Naming rules: upstream and server slugs, gateway names, MCP tool-name rules.

Slugs cannot contain `_`, so `{upstream}__{item}` splits unambiguously and two upstreams can never
produce the same gateway name. Within an upstream, a name that had to be changed to meet the MCP
rules (or that repeats) carries a short hash of the original, so distinct originals stay distinct.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

from bastion.core.errors import BadRequest

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
SEPARATOR = "__"
MAX_NAME = 128
_INVALID = re.compile(r"[^A-Za-z0-9_.-]")


def check_slug(value: str, what: str) -> str:
    """Return `value` if it is a valid slug for `what`, else raise BadRequest saying why."""
    if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
        raise BadRequest(
            f"{what} name {value!r} is not a slug: use 1-63 lowercase letters, digits and single "
            "hyphens, starting and ending with a letter or digit"
        )
    if "--" in value:
        raise BadRequest(f"{what} name {value!r} must not contain '--'")
    return value


def is_valid_tool_name(name: str) -> bool:
    return bool(TOOL_NAME_RE.fullmatch(name))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def gateway_name(upstream: str, name: str, key: str | None = None, *, force_hash: bool = False) -> str:
    """`{upstream}__{name}`, made to fit the MCP name rules without losing distinctness.

    When `name` had to be cleaned or shortened (or `force_hash`), a hash of `key` (the item's
    unique identifier upstream, by default the name itself) keeps distinct items distinct.
    """
    clean = _INVALID.sub("_", name) or "_"
    full = f"{upstream}{SEPARATOR}{clean}"
    if not force_hash and clean == name and len(full) <= MAX_NAME:
        return full
    suffix = "_" + _short_hash(key if key is not None else name)
    return full[: MAX_NAME - len(suffix)] + suffix


def gateway_names(upstream: str, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Gateway names for `(name, key)` pairs of one kind with unique keys; a repeated name is hashed."""
    pairs = list(pairs)
    counts = Counter(name for name, _ in pairs)
    forced = [counts[name] > 1 for name, _ in pairs]
    names = [gateway_name(upstream, name, key, force_hash=f) for (name, key), f in zip(pairs, forced, strict=True)]
    # A plain name can spell another item's hashed name; hash the plain one too (its suffix then differs).
    while True:
        taken = Counter(names)
        clash = [i for i, n in enumerate(names) if taken[n] > 1 and not forced[i]]
        if not clash:
            return names
        for i in clash:
            forced[i] = True
            names[i] = gateway_name(upstream, pairs[i][0], pairs[i][1], force_hash=True)


def check_rename(upstream: str, name: str, *, may_drop_prefix: bool) -> str:
    """Return `name` if it may be the exposed name of an item of `upstream`, else raise BadRequest.

    Exposed names keep their owner's prefix: `{upstream}__...`, so a rename can never move a tool
    into another upstream's namespace (and past rules such as `other__*`). Only an admin may give
    a bare name (no `__` at all), for `prefix: never` servers; a name with another prefix never."""
    prefix = f"{upstream}{SEPARATOR}"
    if name.startswith(prefix) and len(name) > len(prefix):
        return name
    if may_drop_prefix and SEPARATOR not in name:
        return name
    allowed = f"start with {prefix!r}" + (" or contain no '__'" if may_drop_prefix else "")
    raise BadRequest(f"name {name!r} must {allowed}: renamed items keep their upstream's prefix")
