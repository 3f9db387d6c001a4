"""Closed sets, the frozen base model that every core value builds on, and the one character no stored text holds."""

from __future__ import annotations

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


def holds_nul(value: Any) -> bool:
    """Whether any string or dict key inside `value` (parsed JSON) holds a NUL: PostgreSQL can
    neither store nor compare one in text."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False
