"""Bearer tokens: the admin's (one, hash compared in constant time), scoped API tokens and users'
session tokens (both looked up by the SHA-256 of the secret, which is all the database holds).

Verified tokens are cached in memory for a few seconds so the hot path reads no database; `forget`
and `forget_user` drop them at once in this process. With several replicas, a cached API token or
session is also checked against the shared list of revoked ids (Redis) on every use (its own id and
`user:<its user>`), so a revocation, sign-out, deactivation or password change anywhere is refused
everywhere at once; if that list cannot be read, the store (which knows) is asked.
An API token made by a user carries that user's identity, role and teams, so it can never do
more than they can; if the user is deactivated or deleted, their tokens stop working.
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
from bastion.core.identity import User
from bastion.core.ports import ConfigRepo, IdentityRepo, Revocations
from bastion.pipeline.context import Principal

log = logging.getLogger("bastion.auth")

ADMIN_TOKEN_KEY = "admin_token"
TOKEN_PREFIX = "bst_"
SESSION_PREFIX = "bss_"
CACHE_TTL = 5.0
TOUCH_INTERVAL = 60.0
_CACHE_LIMIT = 10_000
ADMIN = Principal(id="admin", kind="admin", role="admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; raises Unauthenticated."""
    if not authorization:
        raise Unauthenticated("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token


USER_REVOCATION = "user:"


def user_revocation(user_id: str) -> str:
    """The shared revocation id that says a user's access changed (sessions and tokens re-read)."""
    return USER_REVOCATION + user_id


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Verified:
    principal: Principal
    fetched: float
    expires_at: datetime | None
    revoked_at: datetime | None
    token: ApiToken | None = None
    session: str | None = None


def user_principal(user: User, *, token: ApiToken | None = None) -> Principal:
    """A user's authority: by session (no grants), or through one of their API tokens (its grants)."""
    if token is None:
        return Principal(id=f"user:{user.id}", kind="user", user=user.id, teams=frozenset(user.teams), role=user.role)
    return Principal(
        id=f"token:{token.id}",
        kind="token",
        grants=Grants.of(token),
        user=user.id,
        teams=frozenset(user.teams),
        role=user.role,
        token=token.id,
    )


class TokenVerifier:
    """Accepts the admin token, and, given a repo, the API tokens stored in it."""

    def __init__(
        self,
        admin_hash: str,
        repo: ConfigRepo | None = None,
        *,
        identity: IdentityRepo | None = None,
        now: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        cache_ttl: float = CACHE_TTL,
        touch_interval: float = TOUCH_INTERVAL,
        revocations: Revocations | None = None,
    ) -> None:
        self._admin = admin_hash.encode()
        self._repo = repo
        self._identity = identity
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

    async def verify(self, authorization: str | None, client_ip: str | None, *, record_use: bool = True) -> Principal:
        """The caller's principal; Unauthenticated (401) for a bad, unknown, expired or revoked
        token, Forbidden (403) for a valid token used from outside its allowed networks. With
        `record_use` off, an API token's "last used" is left as it was."""
        secret = bearer_token(authorization)
        digest = hash_token(secret)
        if hmac.compare_digest(digest.encode(), self._admin):
            return ADMIN
        verified = await self._lookup(digest, session=secret.startswith(SESSION_PREFIX))
        if verified is None:
            raise Unauthenticated("invalid token")
        if verified.revoked_at is not None:
            raise Unauthenticated("this token has been revoked")
        if verified.expires_at is not None and self._now() >= verified.expires_at:
            raise Unauthenticated("this token has expired")
        grants = verified.principal.grants
        if grants is not None and not ip_allowed(grants.networks, client_ip):
            raise Forbidden(f"this token may not be used from {client_ip or 'an unknown address'}")
        if verified.token is not None and record_use:
            await self._touch(verified.token.id, client_ip)
        return verified.principal

    def unrecorded(self) -> UnrecordedTokens:
        """This verifier (its cache and revocations) for re-checking what was verified before: an
        idle caller's open stream is not a use of its token."""
        return UnrecordedTokens(self)

    def forget(self, token_id: str) -> None:
        """Drop a token or session from the cache (after revoking it), so the very next request sees the store."""
        self._drop(lambda v: (v.token.id if v.token else v.session) == token_id)

    def forget_user(self, user_id: str) -> None:
        """Drop every cached session and token of a user (deactivated, deleted, role or teams changed)."""
        self._drop(lambda v: v.principal.user == user_id)

    def _drop(self, matches: Callable[[_Verified], bool]) -> None:
        self._generation += 1
        for digest in [d for d, v in self._cache.items() if matches(v)]:
            del self._cache[digest]

    async def _lookup(self, digest: str, *, session: bool) -> _Verified | None:
        if self._repo is None:
            return None
        now = self._monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached.fetched < self._ttl and not await self._revoked_elsewhere(cached):
            return cached
        generation = self._generation
        verified = await (self._fetch_session(digest, now) if session else self._fetch_token(digest, now))
        if verified is None:
            self._cache.pop(digest, None)
            return None
        if generation == self._generation:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = verified
        return verified

    async def _revoked_elsewhere(self, cached: _Verified) -> bool:
        """Whether another replica revoked this cached API token or session, or changed its user's
        access (True too when that cannot be told)."""
        if self._revocations is None:
            return False
        ids = [cached.token.id] if cached.token is not None else [cached.session] if cached.session else []
        if cached.principal.user is not None:
            ids.append(user_revocation(cached.principal.user))
        if not ids:
            return False
        try:
            return await self._revocations.is_revoked(*ids)
        except ServiceUnavailable:
            return True  # the shared list is unreachable: read the store instead of trusting the cache

    async def _active_user(self, user_id: str) -> User | None:
        user = await self._identity.get_user(user_id) if self._identity is not None else None
        return user if user is not None and user.active else None

    async def _fetch_token(self, digest: str, now: float) -> _Verified | None:
        assert self._repo is not None
        token = await self._repo.get_api_token_by_hash(digest)
        if token is None:
            return None
        if token.user is None:
            principal = Principal(id=f"token:{token.id}", kind="token", grants=Grants.of(token), token=token.id)
        else:
            user = await self._active_user(token.user)
            if user is None:
                return None  # its user is gone or deactivated: the token is as good as unknown
            principal = user_principal(user, token=token)
        return _Verified(principal, now, token.expires_at, token.revoked_at, token)

    async def _fetch_session(self, digest: str, now: float) -> _Verified | None:
        if self._identity is None:
            return None
        session = await self._identity.get_session_by_hash(digest)
        user = await self._active_user(session.user) if session is not None else None
        if session is None or user is None:
            return None
        return _Verified(user_principal(user), now, session.expires_at, session.revoked_at, session=session.id)

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


class UnrecordedTokens:
    """`TokenVerifier.verify` without recording use (see `TokenVerifier.unrecorded`)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal:
        return await self._verifier.verify(authorization, client_ip, record_use=False)


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
