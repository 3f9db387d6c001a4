"""The audit log's keys, derived from one secret: an HMAC key for argument and result hashes and
an Ed25519 key that signs chain heads. Earlier secrets still verify what they signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bastion.core.list_pages import canonical_json


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


class AuditKeys:
    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        self._hmac = _derive(secret, b"bastion audit hmac v1")
        # An HMAC with the key already absorbed: each digest copies it instead of keying a new
        # one (~1.0 us against hmac.digest's ~1.6 us).
        self._keyed = hmac.new(self._hmac, digestmod=hashlib.sha256)
        self._signer = Ed25519PrivateKey.from_private_bytes(_derive(secret, b"bastion audit ed25519 v1"))
        self.key_id = _key_id(self._signer.public_key())
        self._public: dict[str, Ed25519PublicKey] = {}
        for s in (secret, *previous):
            public = Ed25519PrivateKey.from_private_bytes(_derive(s, b"bastion audit ed25519 v1")).public_key()
            self._public[_key_id(public)] = public

    def digest(self, value: Any) -> str:
        """HMAC-SHA256 of a value's canonical JSON: equal values hash equal, content never shows."""
        mac = self._keyed.copy()
        mac.update(canonical_json(value))
        return mac.hexdigest()

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self._signer.sign(message)).decode()

    def valid(self, key_id: str, message: bytes, signature: str) -> bool:
        public = self._public.get(key_id)
        if public is None:
            return False
        try:
            public.verify(base64.b64decode(signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def public_keys(self) -> dict[str, str]:
        """Key id -> base64 raw public key, for verifying outside Bastion."""
        return {
            kid: base64.b64encode(p.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode() for kid, p in self._public.items()
        }
