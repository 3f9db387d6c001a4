"""Where the vault's key-encryption keys come from: settings, a key file, or (embedded only) a new file."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from bastion.vault.envelope import KeyRing

log = logging.getLogger("bastion.vault")


class VaultConfigError(ValueError):
    """The vault has no usable key; Bastion must not start (it could not open what it stored)."""


def decode_key(text: str, what: str) -> bytes:
    """A KEK from base64 text; the error names `what` (a setting), never the value."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VaultConfigError(f"{what} must be base64 of 32 bytes") from None
    if len(key) != 32:
        raise VaultConfigError(f"{what} must decode to 32 bytes, not {len(key)}")
    return key


def read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("vault key file %s is readable by other users; chmod 600 it", path)
    return decode_key(path.read_text(), f"the vault key file {path}")


def _generate_key_file(path: Path) -> bytes:
    """Create the key file (0600) once; a process that loses the race reads the winner's key."""
    key = os.urandom(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key_file(path)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(key).decode() + "\n")
    log.warning(
        "generated a new vault key in %s (mode 0600): back it up with the database; "
        "without it the stored upstream credentials cannot be opened",
        path,
    )
    return key


def load_key_ring(*, key: str | None, key_file: Path, previous: Sequence[str], may_generate: bool) -> KeyRing:
    """The key ring: the current KEK from `key`, else from `key_file` (created there only when
    `may_generate`, i.e. on the embedded database); `previous` KEKs still open older secrets."""
    if key is not None:
        current = decode_key(key, "BASTION_VAULT_KEY")
    elif key_file.is_file():
        current = read_key_file(key_file)
    elif may_generate:
        current = _generate_key_file(key_file)
    else:
        raise VaultConfigError(
            "no vault key: set BASTION_ROOT_KEY (every key is derived from it), or BASTION_VAULT_KEY (base64 of 32 "
            "bytes) or BASTION_VAULT_KEY_FILE, to the same value on every replica; a key file is generated only for "
            "the embedded SQLite database"
        )
    olds = tuple(decode_key(k, "each of BASTION_VAULT_PREVIOUS_KEYS") for k in previous)
    return ring(current, olds)


def ring(current: bytes, previous: Sequence[bytes]) -> KeyRing:
    """A ring of `current` and the distinct `previous` KEKs that still open older secrets."""
    return KeyRing(current, tuple(dict.fromkeys(k for k in previous if k != current)))
