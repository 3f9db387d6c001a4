"""Closed sets, the frozen base model that every core value builds on, and what no stored value holds (a NUL, an
endless float)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Transport = Literal["streamable-http", "sse", "stdio", "openapi", "a2a"]
Isolation = Literal["shared", "per_user", "per_session", "stateless"]
"""How callers share upstream sessions (README "Upstream sessions"): `shared` (stdio: one process,
caller context refused; HTTP/SSE: per-caller sessions for 2025-11-25 calls), `per_user`,
`per_session` (one upstream session, a process on stdio, per caller), `stateless` (declared
stateless-safe: one session carries every call, nothing caller-specific is attributed)."""
Era = Literal["auto", "2025-11-25", "2026-07-28"]
"""Which protocol era Bastion speaks to an upstream: `auto` mirrors each caller's era where the
upstream offers both; a version pins it."""
ItemKind = Literal["tool", "prompt", "resource", "resource_template"]
PrefixMode = Literal["always", "never"]
HealthStatus = Literal["unknown", "healthy", "unhealthy", "disabled"]
Role = Literal["admin", "developer", "viewer"]
PinMode = Literal["off", "warn", "block"]
ROLES: tuple[Role, ...] = ("admin", "developer", "viewer")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def small_int(text: str | bytes, digits: int = 19) -> int | None:
    """The number `text` spells in 1..`digits` ASCII digits, else None. Not `isdigit()` then `int()`:
    `isdigit` is true of `²` and other digits `int` cannot read, and `int` refuses over 4,300 digits;
    text from other parties (headers, events, documents) may hold either."""
    if not 0 < len(text) <= digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def nul_at(value: Any, where: str = "") -> str | None:
    """Where (`servers.0.description`: keys and list indexes joined by dots; "" for `value` itself)
    the first NUL inside `value` is, in a string, bytes (YAML's !!binary, which pydantic takes for
    text) or a key, or None when there is none: PostgreSQL can neither store nor compare one."""
    return _first_at(value, where, _holds_nul)


def unfit_number_at(value: Any, where: str = "") -> str | None:
    """Where (as `nul_at` says it) the first float inside `value` that is NaN or infinite is (JSON's
    NaN and Infinity, a number past a float's range such as 1e400, YAML's .inf), or None: JSON text
    cannot spell one, so a database's JSON column refuses it (on PostgreSQL, a 500)."""
    return _first_at(value, where, _not_finite)


def _holds_nul(value: Any) -> bool:
    return (isinstance(value, str) and "\x00" in value) or (isinstance(value, bytes) and b"\x00" in value)


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _first_at(value: Any, where: str, found_in: Callable[[Any], bool]) -> str | None:
    if found_in(value):
        return where
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple | set | frozenset):  # YAML's !!set is a set, !!omap and !!pairs tuples
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        name = str(key).replace("\x00", "\\0")
        here = f"{where}.{name}" if where else name
        found = _first_at(key, here, found_in) if isinstance(value, dict) else None
        if found is None:
            found = _first_at(item, here, found_in)
        if found is not None:
            return found
    return None
