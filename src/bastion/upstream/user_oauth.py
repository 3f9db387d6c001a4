"""Per-user OAuth upstreams (authorization code + PKCE): the token endpoint calls (code exchange,
refresh) and each user's token source, which refreshes shortly before expiry and once after a 401
and persists the rotated tokens. Tokens live sealed in the store and in memory only; errors name the
upstream and the endpoint's error code, never a token or secret."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx2

from bastion.core.errors import UpstreamNotConnected, UpstreamUnavailable
from bastion.core.models import OAuthUserGrant, UpstreamTokens
from bastion.core.ports import UpstreamTokenStore
from bastion.pipeline.tracing import vault_span
from bastion.upstream.oauth import bearer_of, call_token_endpoint, refusal

_SKEW_SECONDS = 30.0


def reconnect_hint(upstream: str) -> str:
    return f"run `bastion upstreams connect {upstream}` to connect your account"


async def token_request(
    http: httpx2.AsyncClient,
    upstream: str,
    grant: OAuthUserGrant,
    form: dict[str, str],
    *,
    timeout: float,
    clock: Callable[[], float] = time.time,
) -> UpstreamTokens:
    """POST `form` to the upstream's token endpoint; the tokens it answers with. A refusal (4xx with an
    OAuth error) is UpstreamNotConnected: the user has to connect again."""
    auth = None
    if grant.client_secret is not None:
        auth = httpx2.BasicAuth(grant.client_id, grant.client_secret)
    else:
        form = {**form, "client_id": grant.client_id}  # a public client names itself in the body
    where = f"the token endpoint of upstream {upstream!r}"
    status, body = await call_token_endpoint(http, grant.token_url, form, auth=auth, where=where, timeout=timeout)
    if status != 200 or body is None:
        detail = refusal(where, status, body)
        if 400 <= status < 500:
            raise UpstreamNotConnected(f"{detail}; {reconnect_hint(upstream)}")
        raise UpstreamUnavailable(detail)
    return _tokens(body, where, form.get("refresh_token"), clock)


def _tokens(body: dict[str, Any], where: str, old_refresh: str | None, clock: Callable[[], float]) -> UpstreamTokens:
    token, lifetime = bearer_of(body, where)
    refresh = body.get("refresh_token")
    expires_at = clock() + lifetime if lifetime is not None else None
    # No new refresh token in a refresh answer means the old one stays valid (RFC 6749 6).
    return UpstreamTokens(
        access_token=token,
        refresh_token=refresh if isinstance(refresh, str) and refresh else old_refresh,
        expires_at=expires_at,
    )


class UserToken:
    """One user's bearer token for one upstream. Safe for concurrent callers: one refresh at a time."""

    def __init__(
        self,
        upstream: str,
        user: str,
        grant: OAuthUserGrant,
        store: UpstreamTokenStore,
        http: httpx2.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 15.0,
    ) -> None:
        self._upstream = upstream
        self._user = user
        self._grant = grant
        self._store = store
        self._http = http
        self._clock = clock
        self._timeout = timeout
        self._tokens: UpstreamTokens | None = None
        self._stale = False
        self._lock = anyio.Lock()
        self.refreshes = 0

    async def token(self) -> str:
        """This user's access token, refreshed first if it is about to expire or was refused."""
        async with self._lock:
            if self._tokens is None:
                with vault_span("user_token", self._upstream):
                    self._tokens = await self._load()
            if self._stale or self._expiring(self._tokens):
                with vault_span("user_token_refresh", self._upstream):
                    self._tokens = await self._refresh()
                self._stale = False
            return self._tokens.access_token

    def invalidate(self, token: str) -> None:
        """The upstream refused `token` (401): the next `token()` refreshes."""
        if self._tokens is not None and self._tokens.access_token == token:
            self._stale = True

    def _expiring(self, tokens: UpstreamTokens) -> bool:
        if tokens.expires_at is None:
            return False
        return self._clock() >= tokens.expires_at - _SKEW_SECONDS

    async def _load(self) -> UpstreamTokens:
        tokens = await self._store.get_tokens(self._upstream, self._user)
        if tokens is None:
            raise UpstreamNotConnected(
                f"you have not connected your account to upstream {self._upstream!r}; {reconnect_hint(self._upstream)}"
            )
        return tokens

    async def _refresh(self) -> UpstreamTokens:
        current = self._tokens
        stored = await self._load()
        if current is not None and stored.access_token != current.access_token and not self._expiring(stored):
            return stored  # refreshed meanwhile (another replica, or a reconnect): use that, do not spend ours
        if stored.refresh_token is None:
            raise UpstreamNotConnected(
                f"your token for upstream {self._upstream!r} expired and cannot be refreshed; "
                f"{reconnect_hint(self._upstream)}"
            )
        form = {"grant_type": "refresh_token", "refresh_token": stored.refresh_token}
        if self._grant.scope:
            form["scope"] = self._grant.scope
        fresh = await token_request(
            self._http, self._upstream, self._grant, form, timeout=self._timeout, clock=self._clock
        )
        await self._store.save_tokens(self._upstream, self._user, fresh)
        self.refreshes += 1
        return fresh
