"""A committed change to a user drops their cached sessions even when ending their OAuth grants
fails (the shared revoked list unreachable while Redis is down answers 503): `forget_user` ran only
after the grants had ended, so the admin got a 503 and the user's cached sessions stayed, with the
role, the deactivation or the new password already committed."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from bastion.auth.passwords import Passwords
from bastion.control.users import Users
from bastion.core.errors import ServiceUnavailable
from bastion.core.oauth_grants import UserGrant
from bastion.store.identity_memory import MemoryIdentityRepo
from tests.identity import PASSWORD

pytestmark = pytest.mark.anyio


class UnreachableRevocations:
    """The user's grants, whose ending cannot be shared (as with Redis down)."""

    async def of_user(self, user_id: str) -> list[UserGrant]:
        return []

    async def end(self, user_id: str, family: str | None = None) -> list[str]:
        raise ServiceUnavailable("the shared revoked list is unavailable")


CHANGES: dict[str, Callable[[Users, str], Coroutine[Any, Any, Any]]] = {
    "deactivated": lambda users, user: users.patch(user, {"active": False}),
    "new password": lambda users, user: users.patch(user, {"password": "another long enough passphrase"}),
    "deleted": lambda users, user: users.delete(user),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_cached_sessions_are_forgotten_when_ending_grants_fails(change: str) -> None:
    forgotten: list[str] = []

    async def forget_user(user_id: str) -> None:
        forgotten.append(user_id)

    users = Users(MemoryIdentityRepo(), Passwords(), forget_user, grants=UnreachableRevocations())
    user = await users.add("ada@example.com", PASSWORD, "developer")
    with pytest.raises(ServiceUnavailable):
        await CHANGES[change](users, user.id)
    assert forgotten == [user.id]
