"""Sign-in sessions and users' access under the shared revoked-ids list: a verifier that cached a
session refuses it at once when another replica signed it out or changed its user, without being
told, and an OAuth access token revoked on one replica is refused by another's list at once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bastion.auth.oauth.revoked import RevokedTokens
from bastion.auth.tokens import TokenVerifier, hash_token, user_revocation
from bastion.core.errors import ServiceUnavailable, Unauthenticated
from bastion.core.identity import User
from bastion.core.ports import Session
from bastion.store.memory import MemoryRevocations

pytestmark = pytest.mark.anyio

SECRET = "bss_session"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


class FakeIdentity:
    """The session and user lookups the verifier makes, counting them."""

    def __init__(self) -> None:
        self.user = User(id="u1", email="a@x.io", role="developer", created_at=T0)
        self.session = Session(id="s1", user="u1", created_at=T0, expires_at=T0 + timedelta(days=1))
        self.lookups = 0

    async def get_session_by_hash(self, token_hash: str) -> Session | None:
        self.lookups += 1
        return self.session if token_hash == hash_token(SECRET) else None

    async def get_user(self, user_id: str) -> User | None:
        return self.user if user_id == self.user.id else None


class NoTokens:
    async def get_api_token_by_hash(self, token_hash: str) -> None:
        return None


def verifier(identity: FakeIdentity, shared: MemoryRevocations) -> TokenVerifier:
    repo: object = NoTokens()  # only the lookup a session-only test makes
    return TokenVerifier(hash_token("bst_admin"), repo, identity=identity, revocations=shared, now=lambda: T0)  # type: ignore[arg-type]


async def test_a_session_signed_out_on_another_replica_is_refused_at_once_despite_the_cache() -> None:
    identity, shared = FakeIdentity(), MemoryRevocations()
    here = verifier(identity, shared)
    assert (await here.verify(f"Bearer {SECRET}", None)).user == "u1"
    assert (await here.verify(f"Bearer {SECRET}", None)).user == "u1"
    assert identity.lookups == 1  # cached
    # Another replica signs the session out: the store and the shared list change, this one is not told.
    identity.session = replace(identity.session, revoked_at=T0)
    await shared.revoke("s1", ttl=60)
    with pytest.raises(Unauthenticated):
        await here.verify(f"Bearer {SECRET}", None)


async def test_a_user_changed_on_another_replica_is_read_again_at_once() -> None:
    identity, shared = FakeIdentity(), MemoryRevocations()
    here = verifier(identity, shared)
    assert (await here.verify(f"Bearer {SECRET}", None)).role == "developer"
    identity.user = identity.user.model_copy(update={"role": "viewer"})
    await shared.revoke(user_revocation("u1"), ttl=60)
    assert (await here.verify(f"Bearer {SECRET}", None)).role == "viewer"
    identity.user = identity.user.model_copy(update={"active": False})
    with pytest.raises(Unauthenticated):
        await here.verify(f"Bearer {SECRET}", None)


async def test_an_access_token_revoked_on_one_replica_is_refused_by_another() -> None:
    shared = MemoryRevocations()
    here, there = RevokedTokens(shared), RevokedTokens(shared)
    assert not await there.has("j1")
    await here.add("j1", expires_at=4_000_000_000)
    assert await here.has("j1") and await there.has("j1")
    assert not await there.has("j2") and not await there.has(None)


class Unreachable:
    async def revoke(self, token_id: str, ttl: float) -> None:
        raise ServiceUnavailable("down")

    async def is_revoked(self, *token_ids: str) -> bool:
        raise ServiceUnavailable("down")


async def test_an_access_token_is_refused_not_accepted_while_the_shared_list_is_unreachable() -> None:
    revoked = RevokedTokens(Unreachable())
    with pytest.raises(ServiceUnavailable):
        await revoked.has("j1")
    with pytest.raises(ServiceUnavailable):
        await revoked.add("j1", expires_at=4_000_000_000)
