"""The keys Bastion reads from settings: the state key and the vault's key ring."""

from __future__ import annotations

import base64
import os

from bastion.config import Settings
from bastion.vault.envelope import KeyRing
from bastion.vault.keys import decode_key, load_key_ring


def state_key(settings: Settings) -> bytes:
    """The key that seals client-carried state: from settings, or random for this process only."""
    if settings.state_key is None:
        return os.urandom(32)
    try:
        key = base64.b64decode(settings.state_key.get_secret_value(), validate=True)
    except ValueError:
        raise ValueError("BASTION_STATE_KEY must be base64") from None
    if len(key) != 32:
        raise ValueError("BASTION_STATE_KEY must decode to 32 bytes")
    return key


def vault_key_ring(settings: Settings) -> KeyRing:
    """The vault's keys; a key file is generated only for the embedded SQLite database (replicas on
    a shared database must be given the same key, so Bastion refuses to invent one there)."""
    return load_key_ring(
        key=settings.vault_key.get_secret_value() if settings.vault_key else None,
        key_file=settings.vault_key_file,
        previous=[k.get_secret_value() for k in settings.vault_previous_keys],
        may_generate=settings.database_url.startswith("sqlite"),
    )


def audit_secrets(settings: Settings, ring: KeyRing) -> tuple[bytes, tuple[bytes, ...]]:
    """The secret the audit keys derive from (and earlier ones that still verify): BASTION_AUDIT_KEY,
    else the vault's current key (so a cluster that shares its vault key shares its audit keys)."""
    if settings.audit_key is not None:
        current = decode_key(settings.audit_key.get_secret_value(), "BASTION_AUDIT_KEY")
        previous = tuple(decode_key(k.get_secret_value(), "each of BASTION_AUDIT_PREVIOUS_KEYS") for k in settings.audit_previous_keys)
        return current, (*previous, ring.current, *ring.previous)
    return ring.current, ring.previous
