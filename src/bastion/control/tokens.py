"""Scoped API tokens: validate a request, mint the secret (returned once), list, revoke.

Only the SHA-256 of a secret is stored. Revoking tells every replica's verifier (through
`on_revoked`) to stop trusting its cached copy, so the token is refused on the very next request.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from bastion.auth.tokens import hash_token, new_token
from bastion.control.upstream_input import describe_validation
from bastion.core.errors import BadRequest, Forbidden, NotFound
from bastion.core.grants import ALL_SERVERS, PERMISSIONS, ApiToken, Permission, parse_networks
from bastion.core.hidden_text import check_one_line
from bastion.core.ports import ConfigRepo

MAX_NAME = 100


class TokenInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    servers: list[str] | Literal["*"] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=lambda: ["mcp"])
    expires_in: StrictInt | None = None
    ip_allow: list[str] = Field(default_factory=list)


def _permissions(values: list[str]) -> tuple[Permission, ...]:
    unknown = sorted(set(values) - set(PERMISSIONS))
    if unknown:
        raise BadRequest(f"unknown permission {', '.join(map(repr, unknown))}; known: {', '.join(PERMISSIONS)}")
    if not values:
        raise BadRequest("'permissions' must name at least one of: " + ", ".join(PERMISSIONS))
    return tuple(p for p in PERMISSIONS if p in values)


def _servers(value: list[str] | Literal["*"], known: Collection[str]) -> tuple[str, ...] | Literal["*"]:
    if value == ALL_SERVERS:
        return ALL_SERVERS
    missing = [name for name in value if name not in known]
    if missing:
        raise BadRequest(f"no such virtual server: {', '.join(map(repr, missing))}")
    return tuple(dict.fromkeys(value))


def _networks(cidrs: list[str]) -> tuple[str, ...]:
    try:
        return tuple(dict.fromkeys(str(n) for n in parse_networks(cidrs)))
    except ValueError:
        raise BadRequest("'ip_allow' must be a list of CIDRs such as 10.0.0.0/8 or 2001:db8::/32") from None


def parse_token_request(body: dict[str, Any], known_servers: Collection[str], now: datetime) -> ApiToken:
    """The token a creation request asks for (without its secret); raises BadRequest."""
    try:
        data = TokenInput.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe_validation(exc)) from None
    name = data.name.strip()
    if not name or len(name) > MAX_NAME:
        raise BadRequest(f"'name' must be 1 to {MAX_NAME} characters")
    check_one_line(name, "name")  # drawn on one line: logs, the CLI's table, the admin tokens page
    permissions = _permissions(data.permissions)
    servers = _servers(data.servers, known_servers)
    if "mcp" in permissions and not servers:
        raise BadRequest("an 'mcp' token needs 'servers': a list of virtual server names, or \"*\"")
    if data.expires_in is not None and data.expires_in <= 0:
        raise BadRequest("'expires_in' must be a positive number of seconds, or null for no expiry")
    try:
        expires_at = now + timedelta(seconds=data.expires_in) if data.expires_in is not None else None
    except OverflowError:
        raise BadRequest("'expires_in' is too far in the future (the calendar ends in year 9999)") from None
    return ApiToken(
        id=str(uuid.uuid4()),
        name=name,
        servers=servers,
        permissions=permissions,
        created_at=now,
        expires_at=expires_at,
        ip_allow=_networks(data.ip_allow),
    )


class ApiTokens:
    """What the REST API does with tokens, over the store and the verifier's cache."""

    def __init__(
        self,
        repo: ConfigRepo,
        known_servers: Callable[[], Collection[str]],
        on_revoked: Callable[[str], Awaitable[None]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repo
        self._known_servers = known_servers
        self._on_revoked = on_revoked
        self._now = now

    async def create(
        self,
        body: dict[str, Any],
        *,
        user: str | None = None,
        viewer: bool = False,
        may_use: Callable[[str], bool] = lambda _server: True,
    ) -> tuple[ApiToken, str]:
        """The new token and its secret; the secret is not kept anywhere and cannot be shown again.

        A user's token belongs to them and names only servers they can see; a viewer's cannot have 'mcp'."""
        token = parse_token_request(body, [s for s in self._known_servers() if may_use(s)], self._now())
        if viewer and "mcp" in token.permissions:
            raise Forbidden("a viewer's token cannot have the 'mcp' permission", missing="role:developer")
        token = token.model_copy(update={"user": user})
        secret = new_token()
        await self._repo.create_api_token(token, hash_token(secret))
        return token, secret

    async def list(self, *, user: str | None = None, every: bool = True) -> list[ApiToken]:
        """Every token (`every`, for admins) or only `user`'s own."""
        tokens = await self._repo.list_api_tokens()
        return tokens if every else [t for t in tokens if t.user is not None and t.user == user]

    async def revoke(self, token_id: str, *, user: str | None = None, every: bool = True) -> None:
        if not every and not any(t.id == token_id for t in await self.list(user=user, every=False)):
            raise NotFound(f"API token {token_id!r} does not exist")  # someone else's is not shown to exist
        await self._repo.revoke_api_token(token_id, self._now())
        await self._on_revoked(token_id)
