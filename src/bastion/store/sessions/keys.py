"""Key derivation and sealing for session records and event streams.

A record lives at an address keyed (HMAC) by the session id and a keyed hash of the caller's bearer
token (of the OAuth grant, for Bastion's own access tokens, which a refresh replaces), and is sealed
(AES-256-GCM) under a key derived (HKDF) from the state key, the id and that hash: a stolen session
id alone neither finds nor opens it, and another user's token (or grant) finds nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.core.ports import SessionKey, SessionRecord

_NONCE = 12


def _bearer(authorization: str | None) -> bytes:
    if not authorization:
        return b""
    scheme, _, token = authorization.partition(" ")
    return (token.strip() if scheme.lower() == "bearer" else authorization).encode()


class SessionKeys:
    """Derives every session secret from the state key (the same on every replica)."""

    def __init__(self, state_key: bytes) -> None:
        if len(state_key) != 32:
            raise ValueError("the state key must be 32 bytes")
        self._key = state_key

    def _mac(self, label: bytes, *parts: bytes) -> str:
        return hmac.new(self._key, b"\0".join((label, *parts)), hashlib.sha256).hexdigest()

    def _derive(self, label: bytes, *parts: bytes) -> AESGCM:
        info = b"\0".join((label, *parts))
        return AESGCM(HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(self._key))

    def key_for(self, session_id: str, authorization: str | None, oauth_grant: str | None = None) -> SessionKey:
        """The key of `session_id` as presented with this Authorization header: made from the OAuth
        grant the token was verified to carry (`Principal.oauth_grant`), which outlives each access
        token, when it has one; else from the bearer token itself."""
        if oauth_grant is not None:
            return SessionKey(session_id, self._mac(b"bastion/session-grant", oauth_grant.encode()))
        return SessionKey(session_id, self._mac(b"bastion/session-token", _bearer(authorization)))

    def address(self, key: SessionKey) -> str:
        return self._mac(b"bastion/session-address", key.session_id.encode(), key.token_hash.encode())

    def seal(self, key: SessionKey, label: bytes, plain: bytes) -> bytes:
        """`plain` sealed for this session and caller, for one use (`label`)."""
        aead = self._derive(label, key.session_id.encode(), key.token_hash.encode())
        nonce = os.urandom(_NONCE)
        return nonce + aead.encrypt(nonce, plain, self.address(key).encode())

    def open(self, key: SessionKey, label: bytes, sealed: bytes) -> bytes | None:
        """What `seal` sealed, or None if it was altered or sealed for another key or use."""
        aead = self._derive(label, key.session_id.encode(), key.token_hash.encode())
        try:
            return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self.address(key).encode())
        except (InvalidTag, ValueError):
            return None

    def seal_record(self, key: SessionKey, record: SessionRecord) -> bytes:
        plain = json.dumps(dataclasses.asdict(record), separators=(",", ":")).encode()
        return self.seal(key, b"bastion/session-record", plain)

    def open_record(self, key: SessionKey, sealed: bytes) -> SessionRecord | None:
        """The record, or None if it was not sealed for this key (altered, or someone else's)."""
        plain = self.open(key, b"bastion/session-record", sealed)
        if plain is None:
            return None
        try:
            fields: dict[str, Any] = json.loads(plain)
            fields["subscriptions"] = tuple(fields.get("subscriptions") or ())
            return SessionRecord(**fields)
        except (ValueError, TypeError):
            return None

    def stream_cipher(self, session_id: str) -> tuple[str, AESGCM]:
        """A session's event-stream name and the cipher that seals its events at rest."""
        name = self._mac(b"bastion/session-events", session_id.encode())
        return name, self._derive(b"bastion/session-events", session_id.encode())
