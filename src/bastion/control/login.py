"""Signing in: email and password for a session token (only its hash is stored), and signing out.

Unknown email and wrong password get the same error after the same work (a dummy-hash verify);
failures are counted per account and per address, and a locked one is told when to retry (429).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.auth.passwords import MAX_PASSWORD, Passwords
from bastion.auth.tokens import SESSION_PREFIX, hash_token, new_token
from bastion.core.errors import BadRequest, Forbidden, NotFound, TooManyRequests, Unauthenticated
from bastion.core.identity import User, normalize_email
from bastion.core.ports import IdentityRepo, LoginThrottle, Session

BAD_LOGIN = "invalid email or password"


def _credentials(body: dict[str, Any]) -> tuple[str, str]:
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or set(body) - {"email", "password"}:
        raise BadRequest('login takes {"email": "...", "password": "..."}')
    if len(password) > MAX_PASSWORD or len(email) > 1000:
        raise Unauthenticated(BAD_LOGIN)
    return normalize_email(email), password


class Login:
    def __init__(
        self,
        repo: IdentityRepo,
        passwords: Passwords,
        throttle: LoginThrottle,
        ttl: float,
        forget: Callable[[str], Awaitable[None]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repo
        self._passwords = passwords
        self._throttle = throttle
        self._ttl = ttl
        self._forget = forget
        self._now = now

    async def login(self, body: dict[str, Any], ip: str | None) -> tuple[Session, str, User]:
        """A new session, its secret (returned once) and its user; raises Unauthenticated, Forbidden
        (deactivated, told only to someone who knows the password) or TooManyRequests."""
        email, password = _credentials(body)
        wait = await self._throttle.retry_after(email, ip)
        if wait > 0:
            raise TooManyRequests("too many failed logins; try again later", retry_after=max(1, math.ceil(wait)))
        found = await self._repo.find_login(email)
        matched = await self._passwords.verify(found[1] if found is not None else None, password)
        if not matched or found is None:
            await self._throttle.failed(email, ip)
            raise Unauthenticated(BAD_LOGIN)
        await self._throttle.succeeded(email, ip)
        user = found[0]
        if not user.active:
            raise Forbidden("this account is deactivated")
        try:
            session, secret = await self.open_session(user, password_hash=found[1])
        except NotFound:
            # Deleted, or given another password, since it was checked: as if it never matched.
            raise Unauthenticated(BAD_LOGIN) from None
        return session, secret, user

    async def open_session(self, user: User, *, password_hash: str | None = None) -> tuple[Session, str]:
        """A new session for a user whose identity was proven (a password, whose hash is
        `password_hash`, or an identity provider's ID token) and its secret, returned once; only its
        hash is stored. NotFound if the user is gone, or their password changed, meanwhile."""
        now = self._now()
        expires = now + timedelta(seconds=self._ttl)
        session = Session(id=str(uuid.uuid4()), user=user.id, created_at=now, expires_at=expires)
        secret = new_token(SESSION_PREFIX)
        await self._repo.create_session(session, hash_token(secret), password_hash=password_hash)
        return session, secret

    async def logout(self, secret: str) -> None:
        """Revoke the session this secret opened; anything else is a BadRequest."""
        is_session = secret.startswith(SESSION_PREFIX)
        session = await self._repo.get_session_by_hash(hash_token(secret)) if is_session else None
        if session is None:
            raise BadRequest("logout ends a session from /api/v1/auth/login; revoke API tokens instead")
        await self._repo.revoke_session(session.id, self._now())
        await self._forget(session.id)
