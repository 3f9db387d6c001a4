"""Validation of upstream registration input: what the REST API accepts, as one model."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.core.errors import BadRequest
from bastion.core.models import Isolation, Transport, UpstreamSpec
from bastion.core.naming import check_slug


class UpstreamInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    transport: Transport
    url: str | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    isolation: Isolation = "shared"
    enabled: bool = True


def check_url(url: str | None) -> str:
    if not url:
        raise BadRequest("an HTTP upstream needs a 'url'")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself is not echoed: it may carry credentials.
        raise BadRequest("url must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise BadRequest("put credentials in 'headers', not in the url")
    return url


def to_spec(data: UpstreamInput) -> UpstreamSpec:
    """Check the transport-specific fields and return the spec."""
    check_slug(data.name, "upstream")
    if data.transport == "stdio":
        if not data.command or not data.command.strip():
            raise BadRequest("a stdio upstream needs a 'command'")
        if data.url or data.headers:
            raise BadRequest("a stdio upstream takes 'command', 'args' and 'env', not 'url' or 'headers'")
    else:
        check_url(data.url)
        if data.command or data.args or data.env:
            raise BadRequest("an HTTP upstream takes 'url' and 'headers', not 'command', 'args' or 'env'")
    return UpstreamSpec(
        name=data.name,
        transport=data.transport,
        url=data.url,
        command=data.command,
        args=tuple(data.args),
        env=data.env,
        headers=data.headers,
        isolation=data.isolation,
        enabled=data.enabled,
    )


def parse_upstream(body: Any) -> UpstreamSpec:
    try:
        return to_spec(UpstreamInput.model_validate(body))
    except ValidationError as exc:
        raise BadRequest(describe_validation(exc)) from None


def describe_validation(exc: ValidationError) -> str:
    """Pydantic errors as one readable line, without echoing input values (they may be secrets)."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
