"""The admin token: generated once if not configured, stored only as a hash, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from bastion.core.errors import Unauthenticated
from bastion.core.ports import ConfigRepo
from bastion.pipeline.context import Principal

ADMIN_TOKEN_KEY = "admin_token"
TOKEN_PREFIX = "bst_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class AdminTokenVerifier:
    """Accepts exactly one token: the admin's."""

    def __init__(self, token_hash: str) -> None:
        self._hash = token_hash.encode()
        self._principal = Principal(id="admin", kind="admin")

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing Authorization header: send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        if not hmac.compare_digest(hash_token(token.strip()).encode(), self._hash):
            raise Unauthenticated("invalid token")
        return self._principal


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
