"""Bearer tokens: the admin's (one, hash compared in constant time) and scoped API tokens (looked
up by the SHA-256 of the secret, which is all the database holds).

Verified API tokens are cached in memory for a few seconds so the hot path reads no database;
`forget` drops a revoked token at once in this process. With several replicas, a cached token is
also checked against the shared list of revoked ids (Redis) on every use, so a revocation anywhere
is refused everywhere at once; if that list cannot be read, the store (which knows) is asked.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bastion.core.errors import Forbidden, ServiceUnavailable, Unauthenticated
from bastion.core.grants import ApiToken, Grants, ip_allowed
from bastion.core.ports import ConfigRepo, Revocations
from bastion.pipeline.context import Principal

log = logging.getLogger("bastion.auth")

ADMIN_TOKEN_KEY = "admin_token"
TOKEN_PREFIX = "bst_"
CACHE_TTL = 5.0
TOUCH_INTERVAL = 60.0
_CACHE_LIMIT = 10_000
ADMIN = Principal(id="admin", kind="admin", role="admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; raises Unauthenticated."""
    if not authorization:
        raise Unauthenticated("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Verified:
    token: ApiToken
    principal: Principal
    fetched: float


class TokenVerifier:
    """Accepts the admin token, and, given a repo, the API tokens stored in it."""

    def __init__(
        self,
        admin_hash: str,
        repo: ConfigRepo | None = None,
        *,
        now: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        cache_ttl: float = CACHE_TTL,
        touch_interval: float = TOUCH_INTERVAL,
        revocations: Revocations | None = None,
    ) -> None:
        self._admin = admin_hash.encode()
        self._repo = repo
        self._now = now
        self._monotonic = monotonic
        self._ttl = cache_ttl
        self._touch_interval = touch_interval
        self._revocations = revocations
        self._cache: dict[str, _Verified] = {}
        self._touched: dict[str, float] = {}
        # Bumped by every `forget`: a lookup that started before a revocation must not cache.
        self._generation = 0

    @property
    def cache_ttl(self) -> float:
        return self._ttl

    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal:
        """The caller's principal; Unauthenticated (401) for a bad, unknown, expired or revoked
        token, Forbidden (403) for a valid token used from outside its allowed networks."""
        digest = hash_token(bearer_token(authorization))
        if hmac.compare_digest(digest.encode(), self._admin):
            return ADMIN
        verified = await self._lookup(digest)
        if verified is None:
            raise Unauthenticated("invalid token")
        token = verified.token
        if token.revoked_at is not None:
            raise Unauthenticated("this token has been revoked")
        if token.expired(self._now()):
            raise Unauthenticated("this token has expired")
        grants = verified.principal.grants
        if grants is not None and not ip_allowed(grants.networks, client_ip):
            raise Forbidden(f"this token may not be used from {client_ip or 'an unknown address'}")
        await self._touch(token.id, client_ip)
        return verified.principal

    def forget(self, token_id: str) -> None:
        """Drop a token from the cache (after revoking it), so the very next request sees the store."""
        self._generation += 1
        for digest in [d for d, v in self._cache.items() if v.token.id == token_id]:
            del self._cache[digest]

    async def _lookup(self, digest: str) -> _Verified | None:
        if self._repo is None:
            return None
        now = self._monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached.fetched < self._ttl and not await self._revoked_elsewhere(cached):
            return cached
        generation = self._generation
        token = await self._repo.get_api_token_by_hash(digest)
        if token is None:
            self._cache.pop(digest, None)
            return None
        principal = Principal(id=f"token:{token.id}", kind="token", grants=Grants.of(token), token=token.id)
        verified = _Verified(token, principal, now)
        if generation == self._generation:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = verified
        return verified

    async def _revoked_elsewhere(self, cached: _Verified) -> bool:
        """Whether another replica revoked this cached token (True too when that cannot be told)."""
        if self._revocations is None:
            return False
        try:
            return await self._revocations.is_revoked(cached.token.id)
        except ServiceUnavailable:
            return True  # the shared list is unreachable: read the store instead of trusting the cache

    async def _touch(self, token_id: str, client_ip: str | None) -> None:
        """Record use at most once per interval per token: a write per request would be the bottleneck."""
        assert self._repo is not None
        now = self._monotonic()
        last = self._touched.get(token_id)
        if last is not None and now - last < self._touch_interval:
            return
        if len(self._touched) >= _CACHE_LIMIT:
            self._touched.clear()
        self._touched[token_id] = now
        try:
            await self._repo.touch_api_token(token_id, self._now(), client_ip)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not fail the request it records
            log.warning("could not record the use of API token %s: %s", token_id, type(exc).__name__)


async def load_admin_token(repo: ConfigRepo, configured: str | None) -> tuple[str, str | None]:
    """The admin token hash, and the token itself only when it was generated just now (to print once)."""
    if configured:
        return hash_token(configured), None
    stored = await repo.get_secret_hash(ADMIN_TOKEN_KEY)
    if stored:
        return stored, None
    token = new_token()
    await repo.set_secret_hash(ADMIN_TOKEN_KEY, hash_token(token))
    return hash_token(token), token
