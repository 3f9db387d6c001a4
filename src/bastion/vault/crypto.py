"""AEAD sealing (AES-256-GCM) of small state that leaves Bastion and must come back unaltered.

A sealed token is bound to its context by associated data (who it was issued to, for what):
altered, forged, or presented in another context, it does not open.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "bst1."


class SealError(ValueError):
    """The token was not sealed by this key for this context."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the sealing key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, payload: dict[str, Any], context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, json.dumps(payload, separators=(",", ":")).encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def unseal(self, token: str, context: str) -> dict[str, Any]:
        if not token.startswith(PREFIX):
            raise SealError("not a Bastion token")
        body = token[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(raw[:12], raw[12:], context.encode())
            payload = json.loads(plain)
        except (ValueError, InvalidTag) as exc:
            raise SealError("the token was altered, or issued for someone or something else") from exc
        if not isinstance(payload, dict):
            raise SealError("not a Bastion token")
        return payload


    def owns(self, token: object) -> bool:
        """Whether `token` looks like one of Bastion's (it may still fail to open)."""
        return isinstance(token, str) and token.startswith(PREFIX)
