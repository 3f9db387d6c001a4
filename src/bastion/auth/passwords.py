"""Password hashing with argon2id (argon2-cffi's RFC 9106 defaults), off the event loop.

Verification of an unknown account runs against a dummy hash so it takes as long as a real one:
a login's timing must not say whether the email exists.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD = 8
MAX_PASSWORD = 1024


class Passwords:
    """Hash and verify passwords; at most `concurrency` hashes at once (each holds ~64 MiB)."""

    def __init__(self, hasher: PasswordHasher | None = None, concurrency: int = 4) -> None:
        self._hasher = hasher or PasswordHasher()
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._dummy: str | None = None

    def hash_now(self, password: str) -> str:
        """Synchronous hash, for the CLI's bootstrap path."""
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` matches `stored`; with no stored hash, spend the same time and say no."""
        if self._dummy is None:
            self._dummy = await self.hash("bastion-dummy-password")
        target = stored if stored is not None else self._dummy
        try:
            ok = await anyio.to_thread.run_sync(self._hasher.verify, target, password, limiter=self._limiter)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(ok) and stored is not None


def check_password(password: str) -> None:
    """Raise ValueError (caller turns it into 400) for a password too short or too long."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
