"""Signing in with an external identity provider: from an ID token's verified claims to a Bastion
user and a normal login session.

- The account is found by the `email` claim. When `require_verified_email` is on (the default) the
  token must say `email_verified: true`, or anyone who can set an unverified address at the
  provider could take over the Bastion account with that address.
- Unknown people get an account only when `create_users` is on. Its role is the role claim's when
  that names `developer` or `viewer`; `admin` only when the claim says admin AND `allow_admin` is
  on; anything else, or no claim, is `viewer`. The role claim is read only when the account is
  created: afterwards roles are managed in Bastion, so a provider can never raise one.
- When the token carries the teams claim (a list), it decides the account's memberships among the
  teams that exist in Bastion (joined and left to match); teams are never created. Without the
  claim, memberships are left alone.
- A deactivated account is refused. A created account has no password (it cannot sign in locally
  until an admin sets one).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bastion.control.login import Login
from bastion.control.users import check_email
from bastion.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthenticated
from bastion.core.identity import Role, User
from bastion.core.ports import IdentityRepo, Session

# Not an argon2 hash: a password check against it always fails.
NO_PASSWORD = "!external-identity"


@dataclass(frozen=True)
class Provisioning:
    create_users: bool
    allow_admin: bool
    require_verified_email: bool
    teams_claim: str
    role_claim: str


class ExternalLogin:
    def __init__(
        self,
        repo: IdentityRepo,
        login: Login,
        rules: Provisioning,
        changed: Callable[[str], Awaitable[None]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repo
        self._login = login
        self._rules = rules
        self._changed = changed  # told a user's id when their memberships changed
        self._now = now

    def email_of(self, claims: dict[str, Any]) -> str:
        """The verified email the claims name; raises Forbidden when they name none."""
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise Forbidden("the identity provider did not share an email address (request the 'email' scope)")
        if self._rules.require_verified_email and claims.get("email_verified") is not True:
            raise Forbidden("the identity provider has not verified this account's email address")
        try:
            return check_email(email)
        except BadRequest:
            raise Forbidden("the identity provider's email claim is not an email address") from None

    async def sign_in(self, claims: dict[str, Any]) -> tuple[Session, str, User]:
        email = self.email_of(claims)
        user = await self._find(email)
        if user is None:
            if not self._rules.create_users:
                raise Forbidden(f"there is no Bastion account for {email}; ask an admin to create one")
            user = await self._create(email, claims.get(self._rules.role_claim))
        if not user.active:
            raise Forbidden("this account is deactivated")
        await self._sync_teams(user, claims.get(self._rules.teams_claim))
        try:
            session, secret = await self._login.open_session(user)
        except NotFound:  # deleted meanwhile: no account to sign in to, as for a password sign-in
            raise Unauthenticated(f"there is no Bastion account for {email} any more") from None
        return session, secret, user

    async def _find(self, email: str) -> User | None:
        found = await self._repo.find_login(email)
        return found[0] if found is not None else None

    async def _create(self, email: str, role_claim: object) -> User:
        user = User(id=str(uuid.uuid4()), email=email, role=self._role(role_claim), created_at=self._now())
        try:
            await self._repo.create_user(user, NO_PASSWORD)
        except Conflict:
            existing = await self._find(email)  # created at the same moment by another sign-in
            if existing is None:
                raise
            return existing
        return user

    def _role(self, claim: object) -> Role:
        if claim == "admin":
            return "admin" if self._rules.allow_admin else "viewer"
        return "developer" if claim == "developer" else "viewer"

    async def _sync_teams(self, user: User, claim: object) -> None:
        if not isinstance(claim, list):
            return
        named = {t for t in claim if isinstance(t, str)}
        wanted = {t.name for t in await self._repo.list_teams() if t.name in named}
        current = set(user.teams)
        for team in sorted(wanted - current):
            await self._repo.add_member(team, user.id)
        for team in sorted(current - wanted):
            await self._repo.remove_member(team, user.id)
        if wanted != current:
            await self._changed(user.id)
