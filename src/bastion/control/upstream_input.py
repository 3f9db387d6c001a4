"""Validation of upstream registration input: what the REST API accepts, as one model."""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import idna
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.core.errors import BadRequest, BastionError
from bastion.core.models import (
    Era,
    Isolation,
    OAuthClientCredentials,
    OAuthUserGrant,
    OpenApiSource,
    PinMode,
    QueryApiKey,
    Selection,
    Transport,
    UpstreamAuth,
    UpstreamSpec,
)
from bastion.core.naming import check_slug
from bastion.upstream.openapi import parse_document


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


class QueryKeyAuth(_AuthInput):
    """An API key sent as a query parameter `name` (REST upstreams)."""

    type: Literal["api_key_query"]
    name: str = Field(min_length=1, max_length=100)
    value: str = Field(min_length=1)


class BearerInput(_AuthInput):
    """Shorthand for a static `Authorization: Bearer` header."""

    type: Literal["bearer"]
    token: str = Field(min_length=1)


class BasicInput(_AuthInput):
    """Shorthand for a static `Authorization: Basic` header."""

    type: Literal["basic"]
    username: str
    password: str


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
    NoAuth | HeadersAuth | ApiKeyAuth | QueryKeyAuth | BearerInput | BasicInput | ClientCredentialsAuth | UserGrantAuth,
    Field(discriminator="type"),
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
    protocol: Era = "auto"
    enabled: bool = True
    auth: AuthInput | None = None
    # transport "openapi": the document at `spec_url` (or `url`) or inline `spec`, and what of it to expose
    spec_url: str | None = None
    spec: dict[str, Any] | str | None = None
    base_url: str | None = None
    include: Selection | None = None
    exclude: Selection | None = None
    openapi: OpenApiSource | None = None
    pin: PinMode = "block"


def _valid_host(host: str) -> bool:
    """Whether `host` is an IP address or a name the resolver and the HTTP client can encode
    (IDNA 2008 for non-ASCII names; ASCII names keep underscores, as container service names use)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        if not host.isascii():
            idna.encode(host, uts46=True)
            return True
        host.encode("idna")  # label lengths, as the resolver checks them
        for label in host.split("."):
            if label.lower().startswith("xn--"):
                idna.decode(label)
    except (UnicodeError, idna.IDNAError):
        return False
    return True


def check_url(url: str | None, field: str = "url") -> str:
    if not url:
        raise BadRequest(f"an HTTP upstream needs a {field!r}")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise BadRequest(f"{field} must not contain spaces or control characters (percent-encode them)")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port
    except ValueError:
        raise BadRequest(f"{field} is not a valid URL") from None
    if hostname is not None and not _valid_host(hostname):
        raise BadRequest(f"{field}: the host name is not a valid domain name (IDNA)")
    if parts.scheme not in ("http", "https") or not hostname:
        # The URL itself is not echoed: it may carry credentials.
        raise BadRequest(f"{field} must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise BadRequest(f"put credentials in 'headers' or 'auth', not in the {field}")
    return url


def _apply_auth(data: UpstreamInput) -> tuple[dict[str, str], UpstreamAuth | None]:
    """The headers and OAuth settings an `auth` object amounts to."""
    headers, auth = dict(data.headers), data.auth
    if isinstance(auth, BearerInput | BasicInput):
        if "authorization" in {k.lower() for k in headers}:
            raise BadRequest(f"auth type {auth.type} sets Authorization; do not also give it in 'headers'")
        if isinstance(auth, BearerInput):
            headers["Authorization"] = f"Bearer {auth.token}"
        else:
            pair = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
    elif isinstance(auth, QueryKeyAuth):
        if data.transport != "openapi":
            raise BadRequest("auth type api_key_query is for REST (openapi) upstreams")
        return headers, QueryApiKey(name=auth.name, value=auth.value)
    elif isinstance(auth, ApiKeyAuth):
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


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def check_headers(headers: dict[str, str]) -> None:
    """Refuse header names that are not HTTP tokens and values with control or non-ASCII characters
    (a CR/LF would split the request; the HTTP client cannot send either). Values are never echoed."""
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise BadRequest(f"header name {name[:100]!r} is not a valid HTTP header name")
        if not _HEADER_VALUE.fullmatch(value):
            raise BadRequest(f"the value of header {name!r} must be printable ASCII (no control characters)")


def check_process(command: str, args: list[str], env: dict[str, str]) -> None:
    """Refuse what no process can be started with: NUL bytes, and environment names that are
    empty or hold `=` (the OS would read them as another variable)."""
    if "\x00" in command or any("\x00" in arg for arg in args):
        raise BadRequest("'command' and 'args' must not contain NUL characters")
    for name, value in env.items():
        if not name or "=" in name or "\x00" in name:
            raise BadRequest(f"environment variable name {name[:100]!r} must be non-empty without '=' or NUL")
        if "\x00" in value:
            raise BadRequest(f"the value of environment variable {name!r} must not contain NUL characters")


def _openapi(data: UpstreamInput) -> tuple[str | None, OpenApiSource | None]:
    """The document's URL and the source settings of a transport-openapi upstream."""
    given = ("spec_url", "spec", "base_url", "include", "exclude")
    if data.transport != "openapi":
        if any(getattr(data, f) is not None for f in given):
            raise BadRequest(f"{', '.join(given)} are for transport 'openapi'")
        return data.url, None
    if data.spec is not None and data.spec_url is not None:
        raise BadRequest("give either 'spec_url' or 'spec', not both")
    old = data.openapi or OpenApiSource()
    url = data.spec_url or data.url
    spec = old.spec
    if data.spec is not None:
        try:
            spec = data.spec if isinstance(data.spec, dict) else parse_document(data.spec, "'spec'")
        except BastionError as exc:
            raise BadRequest(exc.detail) from None
        url = data.spec_url
    if data.spec_url is not None:
        spec = None
    if (url is None) == (spec is None):
        raise BadRequest("an openapi upstream needs exactly one of 'spec_url' (the document's URL) or 'spec' (inline)")
    if url is not None:
        check_url(url, "spec_url")
    base_url = data.base_url if data.base_url is not None else old.base_url
    if base_url:
        check_url(base_url, "base_url")
    source = OpenApiSource(
        spec=spec,
        base_url=base_url or None,
        include=data.include if data.include is not None else old.include,
        exclude=data.exclude if data.exclude is not None else old.exclude,
    )
    return url, source


def to_spec(data: UpstreamInput) -> UpstreamSpec:
    """Check the transport-specific fields and return the spec."""
    check_slug(data.name, "upstream")
    url, openapi = _openapi(data)
    if data.transport == "stdio" and data.auth is not None and not isinstance(data.auth, NoAuth):
        raise BadRequest("a stdio upstream takes its credentials in 'env', not 'auth'")
    headers, auth = _apply_auth(data)
    check_headers(headers)
    if data.transport == "stdio":
        if not data.command or not data.command.strip():
            raise BadRequest("a stdio upstream needs a 'command'")
        if data.url or data.headers:
            raise BadRequest("a stdio upstream takes 'command', 'args' and 'env', not 'url' or 'headers'")
        check_process(data.command, data.args, data.env)
    else:
        if openapi is None:
            check_url(data.url)
        if data.command or data.args or data.env:
            raise BadRequest("an HTTP upstream takes 'url' and 'headers', not 'command', 'args' or 'env'")
    return UpstreamSpec(
        name=data.name,
        transport=data.transport,
        url=url,
        command=data.command,
        args=tuple(data.args),
        env=data.env,
        headers=headers,
        isolation=data.isolation,
        protocol=data.protocol,
        enabled=data.enabled,
        auth=auth,
        openapi=openapi,
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
