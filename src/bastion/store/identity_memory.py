"""An in-memory IdentityRepo, for tests and single-process tools; same behaviour as the SQL one."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bastion.core.errors import Conflict, NotFound, StaleWrite
from bastion.core.identity import Role, Team, User
from bastion.core.ports import Session


class MemoryIdentityRepo:
    def __init__(self) -> None:
        self._users: dict[str, tuple[User, str]] = {}
        self._teams: dict[str, Team] = {}
        self._members: set[tuple[str, str]] = set()  # (team, user id)
        self._sessions: dict[str, tuple[Session, str]] = {}

    def _with_teams(self, user: User) -> User:
        return user.model_copy(update={"teams": tuple(sorted(t for t, u in self._members if u == user.id))})

    async def create_user(self, user: User, password_hash: str) -> None:
        if user.id in self._users or any(u.email == user.email for u, _ in self._users.values()):
            raise Conflict("a user with this email already exists")
        self._users[user.id] = (user, password_hash)

    async def list_users(self) -> list[User]:
        return sorted((self._with_teams(u) for u, _ in self._users.values()), key=lambda u: u.email)

    async def get_user(self, user_id: str) -> User | None:
        found = self._users.get(user_id)
        return self._with_teams(found[0]) if found is not None else None

    async def find_login(self, email: str) -> tuple[User, str] | None:
        return next(((self._with_teams(u), h) for u, h in self._users.values() if u.email == email), None)

    async def update_user(
        self, user_id: str, *, role: Role | None = None, active: bool | None = None, password_hash: str | None = None
    ) -> User:
        if user_id not in self._users:
            raise NotFound(f"user {user_id!r} does not exist")
        user, stored = self._users[user_id]
        asked = {"role": role, "active": active}
        user = user.model_copy(update={k: v for k, v in asked.items() if v is not None})
        self._users[user_id] = (user, password_hash or stored)
        return self._with_teams(user)

    async def delete_user(self, user_id: str) -> None:
        if self._users.pop(user_id, None) is None:
            raise NotFound(f"user {user_id!r} does not exist")
        self._members = {(t, u) for t, u in self._members if u != user_id}
        self._sessions = {h: (s, u) for h, (s, u) in self._sessions.items() if s.user != user_id}

    async def create_team(self, team: Team) -> None:
        if team.name in self._teams:
            raise Conflict(f"team {team.name!r} already exists")
        self._teams[team.name] = team

    async def list_teams(self) -> list[Team]:
        return [self._team(name) for name in sorted(self._teams)]

    def _team(self, name: str) -> Team:
        members = tuple(sorted(u for t, u in self._members if t == name))
        return self._teams[name].model_copy(update={"members": members})

    async def get_team(self, name: str) -> Team | None:
        return self._team(name) if name in self._teams else None

    async def delete_team(self, name: str, *, members: tuple[str, ...] | None = None) -> None:
        if members is not None and name in self._teams and self._team(name).members != tuple(sorted(members)):
            raise StaleWrite(f"team {name!r} was changed by another request meanwhile")
        if self._teams.pop(name, None) is None:
            raise NotFound(f"team {name!r} does not exist")
        self._members = {(t, u) for t, u in self._members if t != name}

    async def add_member(self, team: str, user_id: str) -> None:
        if team not in self._teams:
            raise NotFound(f"team {team!r} does not exist")
        if user_id not in self._users:
            raise NotFound(f"user {user_id!r} does not exist")
        self._members.add((team, user_id))

    async def remove_member(self, team: str, user_id: str) -> None:
        if (team, user_id) not in self._members:
            raise NotFound(f"user {user_id!r} is not a member of team {team!r}")
        self._members.discard((team, user_id))

    async def create_session(self, session: Session, token_hash: str, *, password_hash: str | None = None) -> None:
        found = self._users.get(session.user)
        if found is None or (password_hash is not None and found[1] != password_hash):
            raise NotFound(f"user {session.user!r} does not exist")
        self._sessions[token_hash] = (session, token_hash)

    async def get_session_by_hash(self, token_hash: str) -> Session | None:
        found = self._sessions.get(token_hash)
        return found[0] if found is not None else None

    async def revoke_session(self, session_id: str, at: datetime) -> None:
        for digest, (session, h) in self._sessions.items():
            if session.id == session_id and session.revoked_at is None:
                self._sessions[digest] = (replace(session, revoked_at=at), h)

    async def revoke_user_sessions(self, user_id: str, at: datetime) -> None:
        for digest, (session, h) in self._sessions.items():
            if session.user == user_id and session.revoked_at is None:
                self._sessions[digest] = (replace(session, revoked_at=at), h)
