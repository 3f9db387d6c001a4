"""Closed sets and the frozen base model that every core value builds on."""

from __future__ import annotations

from typing import Literal

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
