"""Envelope encryption of stored secrets (pure): AES-256-GCM, one fresh data key per secret.

A sealed secret is one self-describing string, ``bsv1.<key id>.<wrapped data key>.<ciphertext>``:
the data key is wrapped by a key-encryption key (KEK) named by its id, and both layers are bound
to the secret's owner (e.g. ``upstream:github:headers``) by associated data, so a ciphertext copied
to another owner, altered, or sealed under a key this ring lacks does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "bsv1"
_NONCE = 12
_KEY_BYTES = 32
_DOES_NOT_OPEN = "the secret of {owner} does not open: altered, or sealed for another owner"


class VaultError(ValueError):
    """A sealed secret could not be opened. Messages never contain key or secret material."""


class MalformedSecret(VaultError):
    """Not a sealed secret of a format this build knows."""


class UnknownKey(VaultError):
    """Sealed under a key-encryption key that is not in the key ring."""


class SecretDoesNotOpen(VaultError):
    """Altered, or sealed for another owner (its associated data does not match)."""


def key_id(kek: bytes) -> str:
    """A short, stable, non-secret name for a KEK (so rotation can tell which key sealed what)."""
    return hashlib.sha256(b"bastion-vault-kek-id\x00" + kek).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _wrap_aad(kid: str, owner: str) -> bytes:
    return f"{VERSION}|wrap|{kid}|{owner}".encode()


def _data_aad(owner: str) -> bytes:
    return f"{VERSION}|data|{owner}".encode()


@dataclass(frozen=True)
class Sealed:
    """The parts of a sealed secret (as parsed; nothing here is opened)."""

    kid: str
    wrapped_key: bytes
    ciphertext: bytes

    @classmethod
    def parse(cls, token: str) -> Sealed:
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 4 or parts[0] != VERSION:
            raise MalformedSecret("not a sealed secret (unknown format or version)")
        try:
            wrapped, ciphertext = _unb64(parts[2]), _unb64(parts[3])
        except (binascii.Error, ValueError):
            raise MalformedSecret("not a sealed secret (bad encoding)") from None
        if len(wrapped) <= _NONCE or len(ciphertext) <= _NONCE:
            raise MalformedSecret("not a sealed secret (truncated)")
        return cls(parts[1], wrapped, ciphertext)

    def format(self) -> str:
        return ".".join((VERSION, self.kid, _b64(self.wrapped_key), _b64(self.ciphertext)))


@dataclass(frozen=True)
class KeyRing:
    """The current KEK, which seals, and previous ones, which still open (until rotation re-wraps)."""

    current: bytes
    previous: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for kek in (self.current, *self.previous):
            if len(kek) != _KEY_BYTES:
                raise ValueError("a vault key must be 32 bytes")
        by_id = {key_id(k): k for k in self.previous}
        by_id[key_id(self.current)] = self.current
        object.__setattr__(self, "_by_id", by_id)

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def kek(self, kid: str) -> bytes:
        try:
            return self._by_id[kid]
        except KeyError:
            raise UnknownKey(f"sealed under key {kid!r}, which is not in the vault key ring") from None


class Envelope:
    """Seal, open and re-wrap secrets with a key ring."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def seal(self, plaintext: bytes, owner: str) -> str:
        """Seal `plaintext` for `owner` under a fresh data key wrapped by the current KEK."""
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, _data_aad(owner))
        return Sealed(self.ring.current_id, self._wrap(data_key, owner), ciphertext).format()

    def open(self, token: str, owner: str) -> bytes:
        """The plaintext of a secret sealed for `owner`; VaultError if it does not open."""
        sealed = Sealed.parse(token)
        data_key = self._unwrap(sealed, owner)
        try:
            return AESGCM(data_key).decrypt(sealed.ciphertext[:_NONCE], sealed.ciphertext[_NONCE:], _data_aad(owner))
        except InvalidTag:
            raise SecretDoesNotOpen(_DOES_NOT_OPEN.format(owner=owner)) from None

    def rewrap(self, token: str, owner: str) -> str:
        """The same secret with its data key wrapped by the current KEK (the ciphertext is kept).

        The data itself is opened once too, so a secret that would no longer open is never re-wrapped.
        """
        self.open(token, owner)
        sealed = Sealed.parse(token)
        if sealed.kid == self.ring.current_id:
            return token
        data_key = self._unwrap(sealed, owner)
        return Sealed(self.ring.current_id, self._wrap(data_key, owner), sealed.ciphertext).format()

    def seal_mapping(self, values: dict[str, str], owner: str) -> str:
        """Seal a name -> value mapping (an upstream's headers or env) as one secret."""
        return self.seal(json.dumps(values, sort_keys=True, separators=(",", ":")).encode(), owner)

    def open_mapping(self, token: str, owner: str) -> dict[str, str]:
        try:
            values = json.loads(self.open(token, owner))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise MalformedSecret(f"the secret of {owner} is not a name -> value mapping") from None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise MalformedSecret(f"the secret of {owner} is not a name -> value mapping")
        return values

    def is_current(self, token: str) -> bool:
        return Sealed.parse(token).kid == self.ring.current_id

    def _wrap(self, data_key: bytes, owner: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.ring.current).encrypt(nonce, data_key, _wrap_aad(self.ring.current_id, owner))

    def _unwrap(self, sealed: Sealed, owner: str) -> bytes:
        kek = self.ring.kek(sealed.kid)
        try:
            aad = _wrap_aad(sealed.kid, owner)
            data_key = AESGCM(kek).decrypt(sealed.wrapped_key[:_NONCE], sealed.wrapped_key[_NONCE:], aad)
        except InvalidTag:
            raise SecretDoesNotOpen(_DOES_NOT_OPEN.format(owner=owner)) from None
        if len(data_key) != _KEY_BYTES:
            raise SecretDoesNotOpen(f"the secret of {owner} does not open: bad data key")
        return data_key
