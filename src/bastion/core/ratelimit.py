"""Rate limits as data: parsing "600/minute", a virtual server's own limits, and which counters a
call counts against. Pure; the counting itself is a `RateLimiter` port (memory or Redis)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{0,6})\s*(second|minute|hour|day)s?\s*$")
LIMITED_METHODS = frozenset(
    {"tools/call", "prompts/get", "resources/read", "completion/complete", "resources/subscribe", "subscriptions/listen"}
)
"""What counts as a call: everything that reaches an upstream or subscribes Bastion to one. Lists
are answered from the snapshot and cost nothing to serve; unsubscribing only releases."""


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` calls per `seconds` (a fixed window)."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


def parse_rate(text: str) -> Rate:
    """"600/minute", "10/second", "5000/hour", "100/10 minutes"... ; raises ValueError."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"rate {text!r} must look like '600/minute' (second, minute, hour or day)")
    count, multiple, unit = int(match[1]), int(match[2] or 1), match[3]
    if count < 1 or multiple < 1:
        raise ValueError(f"rate {text!r} must allow at least 1 call per at least 1 {unit}")
    return Rate(count, multiple * _UNITS[unit])


def _check(value: str | None) -> str | None:
    if value is not None:
        parse_rate(value)
    return value


class RateLimits(BaseModel):
    """A virtual server's own limits, on top of the gateway-wide defaults: `server` for all its
    callers together (replacing the default), `token`/`user` for each caller on this server,
    `tools` per exposed tool name (all callers together)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: str | None = None
    token: str | None = None
    user: str | None = None
    tools: dict[str, str] = Field(default_factory=dict)

    @field_validator("server", "token", "user")
    @classmethod
    def _valid_rate(cls, value: str | None) -> str | None:
        return _check(value)

    @field_validator("tools")
    @classmethod
    def _valid_tools(cls, value: dict[str, str]) -> dict[str, str]:
        for rate in value.values():
            parse_rate(rate)
        return value


@dataclass(frozen=True, slots=True)
class Defaults:
    """Gateway-wide limits from settings (None: unlimited)."""

    token: Rate | None = None
    user: Rate | None = None
    server: Rate | None = None


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    rate: Rate
    what: str
    """For the error message: which limit this is, without any secret."""


def counters_for(
    server: str,
    method: str,
    tool: str | None,
    principal_id: str,
    user: str | None,
    token: str | None,
    defaults: Defaults,
    own: RateLimits | None,
) -> list[Counter]:
    """Every counter one call counts against; empty when nothing limits it."""
    if method not in LIMITED_METHODS:
        return []
    who = user or principal_id
    out: list[Counter] = []
    if defaults.token is not None and token is not None:
        out.append(Counter(f"tok:{token}", defaults.token, "this token's limit"))
    if defaults.user is not None:
        out.append(Counter(f"user:{who}", defaults.user, "your limit"))
    server_rate = parse_rate(own.server) if own is not None and own.server else defaults.server
    if server_rate is not None:
        out.append(Counter(f"srv:{server}", server_rate, f"virtual server {server!r}'s limit"))
    if own is None:
        return out
    if own.token and token is not None:
        out.append(Counter(f"srv:{server}:tok:{token}", parse_rate(own.token), f"this token's limit on {server!r}"))
    if own.user:
        out.append(Counter(f"srv:{server}:user:{who}", parse_rate(own.user), f"your limit on {server!r}"))
    if tool is not None and tool in own.tools:
        out.append(Counter(f"srv:{server}:tool:{tool}", parse_rate(own.tools[tool]), f"tool {tool!r}'s limit"))
    return out
