"""The keys Bastion reads from settings: one root key from which every key is derived, or (for
deployments from before it) the state key and the vault's key ring given one by one.

Explicit BASTION_STATE_KEY / BASTION_VAULT_KEY win over the root key, so an existing deployment
keeps opening what it sealed. Several replicas (Redis) or a shared database need keys every
replica agrees on: there Bastion refuses to start rather than invent one per process.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from bastion.config import Settings
from bastion.vault import root as derivation
from bastion.vault.envelope import KeyRing
from bastion.vault.keys import decode_key, load_key_ring, read_key_file, ring


class KeyConfigError(ValueError):
    """Bastion has no usable key for what it must seal; it must not start."""


@dataclass(frozen=True)
class Keys:
    """Every key of one running Bastion."""

    state: bytes
    """Seals state clients carry between calls (requestState) and OAuth signing keys at rest."""
    sessions: bytes
    """Derives the keys of 2025-11-25 session records (store/sessions/keys.py)."""
    vault: KeyRing
    root: bytes | None = None

    def derive(self, label: str) -> bytes:
        """A key for a further use (e.g. `vault.root.AUDIT_SIGNING`); needs BASTION_ROOT_KEY."""
        if self.root is None:
            raise KeyConfigError(f"deriving the key {label!r} needs BASTION_ROOT_KEY")
        return derivation.derive_key(self.root, label)


def _shared(settings: Settings) -> bool:
    """Whether other processes must open what this one seals: replicas (Redis), a shared database."""
    return settings.redis_url is not None or not settings.database_url.startswith("sqlite")


def root_key(settings: Settings) -> bytes | None:
    if settings.root_key is None:
        return None
    return derivation.decode_root_key(settings.root_key.get_secret_value(), "BASTION_ROOT_KEY")


def _previous_roots(settings: Settings) -> list[bytes]:
    return [derivation.decode_root_key(k.get_secret_value(), "each of BASTION_PREVIOUS_ROOT_KEYS") for k in settings.previous_root_keys]


def _explicit_state_key(settings: Settings) -> bytes | None:
    if settings.state_key is None:
        return None
    try:
        key = base64.b64decode(settings.state_key.get_secret_value(), validate=True)
    except ValueError:
        raise KeyConfigError("BASTION_STATE_KEY must be base64") from None
    if len(key) != 32:
        raise KeyConfigError("BASTION_STATE_KEY must decode to 32 bytes")
    return key


def state_key(settings: Settings) -> bytes:
    """The state key: BASTION_STATE_KEY, else derived from the root key, else (one process on the
    embedded database only) random for this process."""
    explicit = _explicit_state_key(settings)
    if explicit is not None:
        return explicit
    root = root_key(settings)
    if root is not None:
        return derivation.derive_key(root, derivation.STATE)
    if _shared(settings):
        raise KeyConfigError(
            "with Redis or a shared database every replica must seal with the same keys: set BASTION_ROOT_KEY "
            "(base64 of 32+ random bytes, the same on every replica; every key is derived from it), or "
            "BASTION_STATE_KEY and BASTION_VAULT_KEY"
        )
    return os.urandom(32)


def vault_key_ring(settings: Settings) -> KeyRing:
    """The vault's keys. BASTION_VAULT_KEY (or its key file) when given; else the KEK derived from the
    root key, with a key file left from before still opening what it sealed until a rotation; a key
    file is generated only for the embedded SQLite database without a root key."""
    previous = [k.get_secret_value() for k in settings.vault_previous_keys]
    root = root_key(settings)
    derived_previous = [derivation.derive_key(r, derivation.VAULT_KEK) for r in _previous_roots(settings)]
    if settings.vault_key is not None or root is None:
        loaded = load_key_ring(
            key=settings.vault_key.get_secret_value() if settings.vault_key else None,
            key_file=settings.vault_key_file,
            previous=previous,
            may_generate=settings.database_url.startswith("sqlite"),
        )
        extra = [*derived_previous, *([derivation.derive_key(root, derivation.VAULT_KEK)] if root else [])]
        return ring(loaded.current, [*loaded.previous, *extra])
    olds = [decode_key(k, "each of BASTION_VAULT_PREVIOUS_KEYS") for k in previous]
    if settings.vault_key_file.is_file():
        olds.append(read_key_file(settings.vault_key_file))
    return ring(derivation.derive_key(root, derivation.VAULT_KEK), [*olds, *derived_previous])


def load_keys(settings: Settings) -> Keys:
    """Every key, or KeyConfigError / a vault or root key error saying which setting is missing or bad."""
    state = state_key(settings)
    root = root_key(settings)
    if settings.state_key is None and root is not None:
        sessions = derivation.derive_key(root, derivation.SESSIONS)
    else:
        sessions = state  # as before the root key: existing session records keep opening
    return Keys(state=state, sessions=sessions, vault=vault_key_ring(settings), root=root)


def audit_secrets(settings: Settings, keys: Keys) -> tuple[bytes, tuple[bytes, ...]]:
    """The secret the audit keys derive from, and earlier ones that still verify: BASTION_AUDIT_KEY
    when set; else the root key's audit label; else the vault's current key (so a cluster that shares
    its vault key shares its audit keys)."""
    ring = keys.vault
    if settings.audit_key is not None:
        current = decode_key(settings.audit_key.get_secret_value(), "BASTION_AUDIT_KEY")
        previous = tuple(
            decode_key(k.get_secret_value(), "each of BASTION_AUDIT_PREVIOUS_KEYS") for k in settings.audit_previous_keys
        )
        return current, (*previous, ring.current, *ring.previous)
    if keys.root is not None:
        older = tuple(derivation.derive_key(r, derivation.AUDIT_SIGNING) for r in _previous_roots(settings))
        return keys.derive(derivation.AUDIT_SIGNING), (*older, ring.current, *ring.previous)
    return ring.current, ring.previous
