"""Validation of upstream registration input: what the REST API accepts, as one model."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.core.errors import BadRequest
from bastion.core.models import (
    Isolation,
    OAuthClientCredentials,
    OAuthUserGrant,
    PinMode,
    Transport,
    UpstreamAuth,
    UpstreamSpec,
)
from bastion.core.naming import check_slug


class _AuthInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoAuth(_AuthInput):
    type: Literal["none"]


class HeadersAuth(_AuthInput):
    """Static headers: the upstream's `headers` (API keys, a fixed bearer token)."""

    type: Literal["headers"]


class ApiKeyAuth(_AuthInput):
    """Shorthand for one static header carrying an API key."""

    type: Literal["api_key"]
    header: str = Field(default="X-Api-Key", min_length=1, max_length=100)
    value: str = Field(min_length=1)


class ClientCredentialsAuth(_AuthInput):
    type: Literal["oauth_client_credentials"]
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    scope: str | None = None
    audience: str | None = None


class UserGrantAuth(_AuthInput):
    """Each user connects their own account (authorization code + PKCE); needs `isolation: per_user`."""

    type: Literal["oauth_user"]
    authorization_url: str
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(default=None, min_length=1)
    scope: str | None = None


AuthInput = Annotated[
    NoAuth | HeadersAuth | ApiKeyAuth | ClientCredentialsAuth | UserGrantAuth, Field(discriminator="type")
]


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
    auth: AuthInput | None = None
    pin: PinMode = "block"


def check_url(url: str | None, field: str = "url") -> str:
    if not url:
        raise BadRequest(f"an HTTP upstream needs a {field!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself is not echoed: it may carry credentials.
        raise BadRequest(f"{field} must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise BadRequest(f"put credentials in 'headers' or 'auth', not in the {field}")
    return url


def _apply_auth(data: UpstreamInput) -> tuple[dict[str, str], UpstreamAuth | None]:
    """The headers and OAuth settings an `auth` object amounts to."""
    headers, auth = dict(data.headers), data.auth
    if isinstance(auth, ApiKeyAuth):
        if auth.header.lower() in {k.lower() for k in headers}:
            raise BadRequest(f"header {auth.header!r} is given both in 'headers' and by auth type api_key")
        headers[auth.header] = auth.value
    elif isinstance(auth, HeadersAuth) and not headers:
        raise BadRequest("auth type 'headers' needs the static 'headers' to send")
    elif isinstance(auth, ClientCredentialsAuth):
        check_url(auth.token_url, "token_url")
        if "authorization" in {k.lower() for k in headers}:
            raise BadRequest("auth type oauth_client_credentials sets Authorization; do not also give it in 'headers'")
        return headers, OAuthClientCredentials(**auth.model_dump(exclude={"type"}))
    elif isinstance(auth, UserGrantAuth):
        check_url(auth.authorization_url, "authorization_url")
        check_url(auth.token_url, "token_url")
        if data.isolation != "per_user":
            # A shared connection would carry one user's token for everyone.
            raise BadRequest("auth type oauth_user needs 'isolation': 'per_user'")
        if "authorization" in {k.lower() for k in headers}:
            raise BadRequest("auth type oauth_user sets Authorization; do not also give it in 'headers'")
        return headers, OAuthUserGrant(**auth.model_dump(exclude={"type"}))
    return headers, None


def to_spec(data: UpstreamInput) -> UpstreamSpec:
    """Check the transport-specific fields and return the spec."""
    check_slug(data.name, "upstream")
    if data.transport == "stdio" and data.auth is not None and not isinstance(data.auth, NoAuth):
        raise BadRequest("a stdio upstream takes its credentials in 'env', not 'auth'")
    headers, auth = _apply_auth(data)
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
        headers=headers,
        isolation=data.isolation,
        enabled=data.enabled,
        auth=auth,
        pin=data.pin,
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
