"""One root key: every key derived from it is stable, separate per label, and explicit keys win."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

import pytest

from bastion.app.keys import KeyConfigError, load_keys
from bastion.config import Settings
from bastion.vault import root as derivation
from bastion.vault.root import RootKeyError, decode_root_key, derive_key

ROOT = os.urandom(32)
ROOT_TEXT = base64.b64encode(ROOT).decode()
LABELS = (derivation.STATE, derivation.SESSIONS, derivation.VAULT_KEK, derivation.AUDIT_SIGNING)


def settings(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/b.db", "vault_key_file": tmp_path / "vault.key"}
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg, arg-type]


def test_derivation_is_stable_and_separate_per_label() -> None:
    keys = [derive_key(ROOT, label) for label in LABELS]
    assert keys == [derive_key(bytes(ROOT), label) for label in LABELS]  # the same on every replica
    assert len(set(keys)) == len(LABELS) and all(len(k) == 32 for k in keys)
    assert ROOT not in keys
    assert derive_key(os.urandom(32), derivation.STATE) != keys[0]
    # RFC 5869 by hand: a change to the derivation (which would orphan every sealed secret) fails here.
    prk = hmac.new(b"bastion root key v1", ROOT, hashlib.sha256).digest()
    okm = hmac.new(prk, derivation.VAULT_KEK.encode() + b"\x01", hashlib.sha256).digest()
    assert derive_key(ROOT, derivation.VAULT_KEK) == okm


def test_a_root_key_must_be_base64_of_32_bytes_or_more() -> None:
    assert decode_root_key(base64.b64encode(b"k" * 48).decode(), "X") == b"k" * 48
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(RootKeyError) as err:
            decode_root_key(bad, "BASTION_ROOT_KEY")
        assert "BASTION_ROOT_KEY" in str(err.value) and bad not in str(err.value)


def test_every_key_comes_from_the_root_key_alone(tmp_path: Path) -> None:
    keys = load_keys(settings(tmp_path, root_key=ROOT_TEXT, database_url="postgresql+asyncpg://db/x", redis_url="redis://r"))
    assert keys.state == derive_key(ROOT, derivation.STATE)
    assert keys.sessions == derive_key(ROOT, derivation.SESSIONS)
    assert keys.vault.current == derive_key(ROOT, derivation.VAULT_KEK)
    assert keys.derive(derivation.AUDIT_SIGNING) == derive_key(ROOT, derivation.AUDIT_SIGNING)
    assert not (tmp_path / "vault.key").exists()  # nothing generated: the root key is the one secret


def test_explicit_keys_win_and_previous_roots_still_open_the_vault(tmp_path: Path) -> None:
    state, vault, old_root = os.urandom(32), os.urandom(32), os.urandom(32)
    keys = load_keys(settings(
        tmp_path,
        root_key=ROOT_TEXT,
        state_key=base64.b64encode(state).decode(),
        vault_key=base64.b64encode(vault).decode(),
        previous_root_keys=[base64.b64encode(old_root).decode()],
    ))
    assert keys.state == keys.sessions == state  # existing sessions keep opening
    assert keys.vault.current == vault
    assert derive_key(old_root, derivation.VAULT_KEK) in keys.vault.previous
    rotated = load_keys(settings(tmp_path, root_key=ROOT_TEXT, previous_root_keys=[base64.b64encode(old_root).decode()]))
    assert rotated.vault.current == derive_key(ROOT, derivation.VAULT_KEK)
    assert rotated.vault.previous == (derive_key(old_root, derivation.VAULT_KEK),)


def test_a_generated_key_file_still_opens_after_moving_to_a_root_key(tmp_path: Path) -> None:
    before = load_keys(settings(tmp_path))  # the embedded database generates a key file
    after = load_keys(settings(tmp_path, root_key=ROOT_TEXT))
    assert after.vault.current == derive_key(ROOT, derivation.VAULT_KEK)
    assert before.vault.current in after.vault.previous


def test_shared_state_without_keys_refuses_to_start(tmp_path: Path) -> None:
    vault = base64.b64encode(os.urandom(32)).decode()
    for shared in ({"redis_url": "redis://r"}, {"database_url": "postgresql+asyncpg://db/x"}):
        with pytest.raises(KeyConfigError) as err:
            load_keys(settings(tmp_path, vault_key=vault, **shared))
        assert "BASTION_ROOT_KEY" in str(err.value)
    assert load_keys(settings(tmp_path, vault_key=vault, redis_url="redis://r", state_key=vault)).state
