"""The authorization server's signing keys: ES256 keys Bastion generates itself, kept in the database
(the private half sealed with the state key) so every replica signs and verifies with the same set.

The newest key that this replica can open signs; once it is older than `rotate_after` a new one is
made and the others are retired. A retired key stays published (JWKS) until every token it signed
has expired, then it is deleted. Replicas re-read the table now and then, so they switch to a key
another replica made; a verifier that meets an unknown key id reloads too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.core.oauth import OAuthRepo, SigningKey
from bastion.core.ports import StateSealer

log = logging.getLogger("bastion.auth")

ALGORITHM = "ES256"
_RELOAD_EVERY = 60.0
"""Seconds between re-reads of the key table: how long a replica may sign with a key another retired."""
_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class _Signer:
    kid: str
    key: ec.EllipticCurvePrivateKey
    created_at: datetime


def _context(kid: str) -> str:
    return f"oauth-signing-key:{kid}"


class SigningKeys:
    def __init__(
        self,
        repo: OAuthRepo,
        sealer: StateSealer,
        *,
        rotate_after: float,
        token_ttl: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repo
        self._sealer = sealer
        self._rotate_after = timedelta(seconds=rotate_after)
        # A key retired now may still have signed tokens alive for this long, on a replica yet to notice.
        self._keep_retired = timedelta(seconds=token_ttl + _RELOAD_EVERY) + _MARGIN
        self._now = now
        self._signer: _Signer | None = None
        self._loaded_at: datetime | None = None
        self._lock = anyio.Lock()

    async def sign(self, claims: dict[str, Any]) -> str:
        """A JWT of `claims`, signed with the current key (`typ: at+jwt`, RFC 9068)."""
        signer = await self._current()
        return jwt.encode(claims, signer.key, algorithm=ALGORITHM, headers={"kid": signer.kid, "typ": "at+jwt"})

    async def jwks(self) -> dict[str, Any]:
        """Every key a live token may be signed with, as a JWKS document (made at first use, and
        rotated when due, so a client may read it before any token was issued)."""
        await self._current()
        return {"keys": [key.public_jwk for key in await self._repo.list_signing_keys()]}

    async def _current(self) -> _Signer:
        now = self._now()
        signer = self._signer
        fresh = self._loaded_at is not None and now - self._loaded_at < timedelta(seconds=_RELOAD_EVERY)
        if signer is not None and fresh and now - signer.created_at < self._rotate_after:
            return signer
        async with self._lock:
            now = self._now()
            signer = await self._load()
            if signer is None or now - signer.created_at >= self._rotate_after:
                signer = await self._rotate(now)
            self._signer, self._loaded_at = signer, now
            return signer

    async def _load(self) -> _Signer | None:
        """The newest unretired key this replica can open (another replica's, sealed with another
        state key, it cannot: then it makes its own)."""
        for stored in reversed(await self._repo.list_signing_keys()):
            if stored.retired_at is not None:
                continue
            try:
                pem = self._sealer.unseal(stored.private_sealed, _context(stored.kid))["pem"]
                key = serialization.load_pem_private_key(str(pem).encode(), password=None)
            except (ValueError, KeyError, TypeError):
                log.warning("signing key %s cannot be opened with this replica's state key", stored.kid)
                continue
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return _Signer(stored.kid, key, stored.created_at)
        return None

    async def _rotate(self, now: datetime) -> _Signer:
        key = ec.generate_private_key(ec.SECP256R1())
        kid = secrets.token_urlsafe(12)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        stored = SigningKey(
            kid=kid,
            algorithm=ALGORITHM,
            public_jwk={**public, "kid": kid, "use": "sig", "alg": ALGORITHM},
            private_sealed=self._sealer.seal({"pem": pem.decode()}, _context(kid)),
            created_at=now,
        )
        await self._repo.add_signing_key(stored)
        await self._repo.retire_signing_keys(kid, now)
        await self._repo.delete_signing_keys(now - self._keep_retired)
        log.info("new OAuth signing key %s", kid)
        return _Signer(kid, key, now)
