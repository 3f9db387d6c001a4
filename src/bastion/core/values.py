"""Closed sets and the frozen base model that every core value builds on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Transport = Literal["streamable-http", "sse", "stdio"]
Isolation = Literal["shared", "per_user"]
ItemKind = Literal["tool", "prompt", "resource", "resource_template"]
PrefixMode = Literal["always", "never"]
HealthStatus = Literal["unknown", "healthy", "unhealthy", "disabled"]
Role = Literal["admin", "developer", "viewer"]
PinMode = Literal["off", "warn", "block"]
ROLES: tuple[Role, ...] = ("admin", "developer", "viewer")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
