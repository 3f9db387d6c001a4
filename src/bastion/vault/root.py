"""One root secret, and every key Bastion needs derived from it (HKDF-SHA256, RFC 5869), one label
per use: an operator manages (and rotates) one secret, and replicas given the same one agree on
every key. Derived keys are independent: knowing one says nothing about the root or the others.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_ROOT_BYTES = 32
_SALT = b"bastion root key v1"

STATE = "bastion/state"
"""Seals state clients carry between calls (requestState) and the OAuth signing keys at rest."""
SESSIONS = "bastion/sessions"
"""Addresses and seals 2025-11-25 session records and their event streams."""
VAULT_KEK = "bastion/vault-kek"
"""The vault's key-encryption key (wraps the data keys of stored upstream credentials)."""
AUDIT_SIGNING = "bastion/audit-signing"
"""Seed of the audit log's signing key."""


class RootKeyError(ValueError):
    """The root key (or a previous one) is not usable; Bastion must not start."""


def decode_root_key(text: str, what: str) -> bytes:
    """A root key from base64 text (32 bytes or more); the error names `what` (a setting), never the value."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise RootKeyError(f"{what} must be base64 of at least {MIN_ROOT_BYTES} random bytes") from None
    if len(key) < MIN_ROOT_BYTES:
        raise RootKeyError(f"{what} must decode to at least {MIN_ROOT_BYTES} bytes, not {len(key)}")
    return key


def derive_key(root: bytes, label: str, length: int = 32) -> bytes:
    """The key for `label` (one of this module's labels, or a new one for a new use): the same root
    and label always give the same key, different labels unrelated keys."""
    if len(root) < MIN_ROOT_BYTES:
        raise RootKeyError(f"a root key must be at least {MIN_ROOT_BYTES} bytes")
    if not label:
        raise ValueError("a derived key needs a label")
    return HKDF(algorithm=SHA256(), length=length, salt=_SALT, info=label.encode()).derive(root)
