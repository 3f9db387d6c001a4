"""Users: create (password hashed with argon2id), list, change role/active/password, delete, and
the first admin from settings. Passwords are never returned, logged or put in an error."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from bastion.auth.passwords import Passwords, check_password
from bastion.control.upstream_input import describe_validation
from bastion.core.errors import BadRequest, Conflict, NotFound
from bastion.core.hidden_text import check_visible
from bastion.core.identity import MAX_EMAIL, Role, User, normalize_email
from bastion.core.oauth_grants import UserGrant, UserGrantsPort
from bastion.core.ports import IdentityRepo


async def _unchanged(_user: str) -> None:
    return None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str
    password: str
    role: Role = "viewer"
    active: StrictBool = True


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    active: StrictBool | None = None
    password: str | None = None


def _validated(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe_validation(exc)) from None


def check_email(email: str) -> str:
    """The normalised email; raises BadRequest when it does not look like one. An identity provider's
    email is taken with this check alone: one a browser draws otherwise is written out where shown."""
    value = normalize_email(email)
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value) or len(value) > MAX_EMAIL:
        raise BadRequest("'email' must be an email address such as ada@example.com")
    return value


def _password(password: str) -> str:
    try:
        check_password(password)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return password


class Users:
    """What the REST API and the CLI do with users, over the identity store."""

    def __init__(
        self,
        repo: IdentityRepo,
        passwords: Passwords,
        changed: Callable[[str], Awaitable[None]] = _unchanged,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        grants: UserGrantsPort | None = None,
    ) -> None:
        self._repo = repo
        self._passwords = passwords
        self._changed = changed  # told a user's id when their access changed, to drop cached sessions
        self._now = now
        self._grants = grants  # the user's OAuth grants (None: Bastion is not its own authorization server)

    async def create(self, body: dict[str, Any]) -> User:
        data: NewUser = _validated(NewUser, body)
        return await self.add(data.email, data.password, data.role, active=data.active)

    async def add(self, email: str, password: str, role: Role, *, active: bool = True) -> User:
        """A new user (REST, CLI, settings): an email a browser would draw as another is refused."""
        address = check_visible(check_email(email), "email")
        user = User(id=str(uuid.uuid4()), email=address, role=role, active=active, created_at=self._now())
        await self._repo.create_user(user, await self._passwords.hash(_password(password)))
        return user

    async def list(self) -> list[User]:
        return await self._repo.list_users()

    async def get(self, key: str) -> User:
        """A user by id or by email."""
        if "@" in key:
            found = await self._repo.find_login(normalize_email(key))
            user = found[0] if found is not None else None
        else:
            user = await self._repo.get_user(key)
        if user is None:
            raise NotFound(f"user {key!r} does not exist")
        return user

    async def patch(self, key: str, body: dict[str, Any]) -> User:
        user = await self.get(key)
        data: UserPatch = _validated(UserPatch, body)
        password_hash = await self._passwords.hash(_password(data.password)) if data.password is not None else None
        updated = await self._repo.update_user(user.id, role=data.role, active=data.active, password_hash=password_hash)
        try:
            if data.active is False or password_hash is not None:
                # What the old password let anyone obtain ends with it: sign-in sessions and OAuth
                # grants alike (a deactivated user's grants would otherwise come back on reactivation).
                await self._repo.revoke_user_sessions(user.id, self._now())
                await self._end_grants(user.id)
        finally:
            # The change is committed: cached sessions go even when ending what it ends failed.
            await self._changed(user.id)
        return updated

    async def delete(self, key: str) -> None:
        user = await self.get(key)
        try:
            await self._end_grants(user.id)
            await self._repo.delete_user(user.id)
        finally:
            await self._changed(user.id)  # some grants may have ended before a failure

    async def grants(self, key: str) -> tuple[User, Sequence[UserGrant]]:
        """A user's live OAuth grants (never a token)."""
        user = await self.get(key)
        return user, await self._grants.of_user(user.id) if self._grants is not None else []

    async def end_grants(self, key: str, grant: str | None = None) -> Sequence[str]:
        """End a user's OAuth grants, or the one named; NotFound if that one is not a live grant of theirs."""
        user = await self.get(key)
        ended = await self._end_grants(user.id, grant)
        if grant is not None and not ended:
            raise NotFound(f"grant {grant!r} of user {key!r} does not exist")
        return ended

    async def _end_grants(self, user_id: str, grant: str | None = None) -> Sequence[str]:
        return await self._grants.end(user_id, grant) if self._grants is not None else []

    async def ensure_admin(self, email: str, password: str) -> User | None:
        """Create the first admin from settings unless a user with that email exists; the new user or None."""
        if await self._repo.find_login(check_email(email)) is not None:
            return None
        try:
            return await self.add(email, password, "admin")
        except Conflict:
            return None  # another replica created it first
