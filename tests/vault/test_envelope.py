"""The envelope format on its own: round trips, and every way a sealed secret must refuse to open."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.vault.envelope import (
    Envelope,
    KeyRing,
    MalformedSecret,
    Sealed,
    SecretDoesNotOpen,
    UnknownKey,
    VaultError,
    key_id,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
OWNER = "upstream:github:headers"


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@given(plaintext=st.binary(max_size=2048), owner=st.text(min_size=1, max_size=80))
def test_what_is_sealed_opens_to_the_same_bytes(plaintext: bytes, owner: str) -> None:
    envelope = Envelope(KeyRing(KEY_A))
    token = envelope.seal(plaintext, owner)
    assert envelope.open(token, owner) == plaintext


@given(values=st.dictionaries(st.text(max_size=40), st.text(max_size=200), max_size=8))
def test_mappings_round_trip(values: dict[str, str]) -> None:
    envelope = Envelope(KeyRing(KEY_A))
    assert envelope.open_mapping(envelope.seal_mapping(values, OWNER), OWNER) == values


def test_a_sealed_secret_names_its_format_and_key_but_not_its_value() -> None:
    envelope = Envelope(KeyRing(KEY_A))
    token = envelope.seal(b"ghp_supersecret", OWNER)
    version, kid, _, _ = token.split(".")
    assert (version, kid) == ("bsv1", key_id(KEY_A))
    assert b"ghp_supersecret" not in token.encode()
    assert envelope.seal(b"ghp_supersecret", OWNER) != token  # a fresh data key and nonce each time


def test_every_altered_part_fails_to_open() -> None:
    envelope = Envelope(KeyRing(KEY_A))
    sealed = Sealed.parse(envelope.seal(b"value", OWNER))
    for altered in (
        Sealed(sealed.kid, _flip(sealed.wrapped_key, 20), sealed.ciphertext),
        Sealed(sealed.kid, sealed.wrapped_key, _flip(sealed.ciphertext, 3)),
        Sealed(sealed.kid, sealed.wrapped_key, _flip(sealed.ciphertext, len(sealed.ciphertext) - 1)),
        Sealed(sealed.kid, _flip(sealed.wrapped_key, 0), sealed.ciphertext),  # the wrap nonce
    ):
        with pytest.raises(SecretDoesNotOpen):
            envelope.open(altered.format(), OWNER)


def test_a_secret_copied_to_another_owner_does_not_open() -> None:
    envelope = Envelope(KeyRing(KEY_A))
    token = envelope.seal(b"value", "upstream:a:headers")
    for other in ("upstream:b:headers", "upstream:a:env", "user:1:upstream:a"):
        with pytest.raises(SecretDoesNotOpen):
            envelope.open(token, other)


def test_data_from_one_secret_under_the_key_of_another_does_not_open() -> None:
    envelope = Envelope(KeyRing(KEY_A))
    first, second = Sealed.parse(envelope.seal(b"one", OWNER)), Sealed.parse(envelope.seal(b"two", OWNER))
    spliced = Sealed(first.kid, first.wrapped_key, second.ciphertext).format()
    with pytest.raises(SecretDoesNotOpen):
        envelope.open(spliced, OWNER)


def test_the_wrong_key_under_the_right_key_id_does_not_open() -> None:
    token = Envelope(KeyRing(KEY_A)).seal(b"value", OWNER)
    forged = token.replace(key_id(KEY_A), key_id(KEY_B))
    with pytest.raises(SecretDoesNotOpen):
        Envelope(KeyRing(KEY_B)).open(forged, OWNER)


def test_an_unknown_key_id_is_named_as_such() -> None:
    token = Envelope(KeyRing(KEY_A)).seal(b"value", OWNER)
    with pytest.raises(UnknownKey) as caught:
        Envelope(KeyRing(KEY_B)).open(token, OWNER)
    assert key_id(KEY_A) in str(caught.value)


@pytest.mark.parametrize(
    "token",
    ["", "plain text", "bsv2.a.b.c", "bsv1.a.b", "bsv1.kid.!!!.???", "bsv1.kid.AAAA.AAAA", "bsv1.kid..", "a.b.c.d.e"],
)
def test_malformed_secrets_are_refused(token: str) -> None:
    with pytest.raises(MalformedSecret):
        Envelope(KeyRing(KEY_A)).open(token, OWNER)


def test_previous_keys_still_open_and_rewrap_moves_to_the_current_key() -> None:
    old = Envelope(KeyRing(KEY_A)).seal(b"value", OWNER)
    rotated = Envelope(KeyRing(KEY_B, (KEY_A,)))
    assert rotated.open(old, OWNER) == b"value"
    assert not rotated.is_current(old)
    fresh = rotated.rewrap(old, OWNER)
    assert rotated.is_current(fresh) and rotated.rewrap(fresh, OWNER) == fresh
    assert Sealed.parse(fresh).ciphertext == Sealed.parse(old).ciphertext  # only the data key was re-wrapped
    assert Envelope(KeyRing(KEY_B)).open(fresh, OWNER) == b"value"
    with pytest.raises(UnknownKey):
        Envelope(KeyRing(KEY_A)).open(fresh, OWNER)


def test_rewrap_refuses_a_secret_of_another_owner() -> None:
    old = Envelope(KeyRing(KEY_A)).seal(b"value", "upstream:a:headers")
    with pytest.raises(SecretDoesNotOpen):
        Envelope(KeyRing(KEY_B, (KEY_A,))).rewrap(old, "upstream:b:headers")


def test_errors_never_carry_the_key_or_the_value() -> None:
    secret = b"s3cr3t-value-123"
    token = Envelope(KeyRing(KEY_A)).seal(secret, OWNER)
    for ring in (KeyRing(KEY_B), KeyRing(KEY_A)):
        with pytest.raises(VaultError) as caught:
            Envelope(ring).open(token, "upstream:other:headers")
        text = str(caught.value)
        assert secret.decode() not in text and KEY_A.hex() not in text


def test_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        KeyRing(os.urandom(16))
    with pytest.raises(ValueError):
        KeyRing(KEY_A, (b"short",))
