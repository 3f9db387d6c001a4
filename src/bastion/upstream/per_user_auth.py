"""What the pool keeps per user for per-user OAuth upstreams: each user's token source and, for the
SDK's streamable HTTP transport, an httpx client that carries that user's token (and no one else's)."""

from __future__ import annotations

from collections.abc import Callable
from http.cookiejar import CookieJar

import httpx2

from bastion.core.errors import UpstreamNotConnected
from bastion.core.models import OAuthUserGrant, UpstreamSpec
from bastion.core.ports import UpstreamTokenStore
from bastion.outbound import Outbound
from bastion.upstream.oauth import BearerAuth
from bastion.upstream.user_oauth import UserToken

Key = tuple[str, str]


def user_grant(spec: UpstreamSpec) -> OAuthUserGrant | None:
    return spec.auth if isinstance(spec.auth, OAuthUserGrant) else None


class PerUserAuth:
    """Token sources and httpx clients keyed by (upstream, verified user id)."""

    def __init__(
        self,
        store: UpstreamTokenStore | None,
        token_http: httpx2.AsyncClient,
        outbound: Outbound,
        *,
        timeout: float,
        cookies: Callable[[], CookieJar],
    ) -> None:
        self._store = store
        self._token_http = token_http  # token requests go out on the plain client, never with upstream headers
        self._outbound = outbound
        self._timeout = timeout
        self._cookies = cookies
        self._sources: dict[Key, UserToken] = {}
        self._http: dict[Key, httpx2.AsyncClient] = {}

    def source(self, spec: UpstreamSpec, user: str | None) -> UserToken:
        grant = user_grant(spec)
        assert grant is not None, "only for per-user OAuth upstreams"
        if user is None or self._store is None:
            raise UpstreamNotConnected(
                f"upstream {spec.name!r} acts for each user with their own account; only a signed-in user can call it"
            )
        key = (spec.name, user)
        found = self._sources.get(key)
        if found is None:
            found = self._sources[key] = UserToken(
                spec.name, user, grant, self._store, self._token_http, timeout=self._timeout
            )
        return found

    def http(self, spec: UpstreamSpec, user: str | None) -> httpx2.AsyncClient | None:
        """The user's own httpx client for the SDK transport (None for SSE, which takes `auth` itself)."""
        if spec.transport != "streamable-http":
            return None
        source = self.source(spec, user)
        key = (spec.name, user or "")
        client = self._http.get(key)
        if client is None:
            client = self._http[key] = self._outbound.client(
                headers=dict(spec.headers), auth=BearerAuth(source), cookies=self._cookies()
            )
        return client

    async def forget(self, name: str, user: str | None = None) -> None:
        """Drop the sources and clients of one user (or every user) of upstream `name`."""
        keys = [k for k in (*self._sources, *self._http) if k[0] == name and (user is None or k[1] == user)]
        clients = []
        for key in set(keys):
            self._sources.pop(key, None)
            client = self._http.pop(key, None)
            if client is not None:
                clients.append(client)
        for client in clients:
            await client.aclose()

    async def delete_stored(self, name: str) -> int:
        """Every user's stored tokens for upstream `name` deleted (their sources and clients too)."""
        await self.forget(name)
        return 0 if self._store is None else await self._store.delete_upstream_tokens(name)

    async def aclose(self) -> None:
        clients = list(self._http.values())
        self._http.clear()
        self._sources.clear()
        for client in clients:
            await client.aclose()
