"""The SQL IdentityRepo: users, teams, memberships and sessions (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.core.errors import Conflict, NotFound, StaleWrite
from bastion.core.identity import Role, Team, User
from bastion.core.ports import Session
from bastion.store.sql.repo import _aware, _utc, unmatchable
from bastion.store.sql.tables import api_tokens, team_members, teams, upstreams, user_sessions, users, virtual_servers


async def _memberships(conn: AsyncConnection, user_ids: list[str] | None = None) -> dict[str, list[str]]:
    query = select(team_members).order_by(team_members.c.team)
    if user_ids is not None:
        query = query.where(team_members.c.user_id.in_(user_ids))
    out: dict[str, list[str]] = defaultdict(list)
    for row in await conn.execute(query):
        out[row.user_id].append(row.team)
    return out


def _user(row: Any, teams_of: dict[str, list[str]]) -> User:
    return User(
        id=row.id,
        email=row.email,
        role=row.role,
        active=row.active,
        teams=tuple(teams_of.get(row.id, ())),
        created_at=_utc(row.created_at),
    )


class SqlIdentityRepo:
    """IdentityRepo over an AsyncEngine. Every method is one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_user(self, user: User, password_hash: str) -> None:
        values = {
            "id": user.id,
            "email": user.email,
            "password_hash": password_hash,
            "role": user.role,
            "active": user.active,
            "created_at": user.created_at,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(users).values(**values))
        except IntegrityError:
            raise Conflict("a user with this email already exists") from None

    async def list_users(self) -> list[User]:
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(select(users).order_by(users.c.email)))
            teams_of = await _memberships(conn)
        return [_user(r, teams_of) for r in rows]

    async def get_user(self, user_id: str) -> User | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
            return _user(row, await _memberships(conn, [user_id])) if row is not None else None

    async def find_login(self, email: str) -> tuple[User, str] | None:
        if unmatchable(email):  # the consent page's form
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.email == email))).first()
            if row is None:
                return None
            return _user(row, await _memberships(conn, [row.id])), str(row.password_hash)

    async def update_user(
        self, user_id: str, *, role: Role | None = None, active: bool | None = None, password_hash: str | None = None
    ) -> User:
        asked = {"role": role, "active": active, "password_hash": password_hash}
        changes = {k: v for k, v in asked.items() if v is not None}
        async with self.engine.begin() as conn:
            if changes:
                result = await conn.execute(update(users).where(users.c.id == user_id).values(**changes))
                if result.rowcount == 0:
                    raise NotFound(f"user {user_id!r} does not exist")
        found = await self.get_user(user_id)
        if found is None:
            raise NotFound(f"user {user_id!r} does not exist")
        return found

    async def delete_user(self, user_id: str) -> None:
        async with self.engine.begin() as conn:
            # The user's row first: a token being created for them meanwhile waits on it
            # (SqlConfigRepo.create_api_token), so it is refused, or stored before their tokens are
            # deleted here; never left behind them.
            result = await conn.execute(delete(users).where(users.c.id == user_id))
            if result.rowcount == 0:
                raise NotFound(f"user {user_id!r} does not exist")
            await conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id))
            await conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))
            await conn.execute(delete(team_members).where(team_members.c.user_id == user_id))

    async def create_team(self, team: Team) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(teams).values(name=team.name, created_at=team.created_at))
        except IntegrityError:
            raise Conflict(f"team {team.name!r} already exists") from None

    async def list_teams(self) -> list[Team]:
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(select(teams).order_by(teams.c.name)))
            members: dict[str, list[str]] = defaultdict(list)
            for m in await conn.execute(select(team_members).order_by(team_members.c.user_id)):
                members[m.team].append(m.user_id)
        return [Team(name=r.name, members=tuple(members[r.name]), created_at=_utc(r.created_at)) for r in rows]

    async def get_team(self, name: str) -> Team | None:
        return next((t for t in await self.list_teams() if t.name == name), None)

    async def delete_team(self, name: str, *, members: tuple[str, ...] | None = None) -> None:
        async with self.engine.begin() as conn:
            # The team's row locked first, then its members read: a member added meanwhile (its foreign key
            # check takes FOR KEY SHARE on this row, which FOR UPDATE conflicts with, and a write that
            # changes nothing does not: FOR NO KEY UPDATE) waits for this and then finds no team, instead
            # of landing between the read below and the deletes (PostgreSQL). SQLite: the write below
            # takes the database's write lock before the read.
            await conn.execute(select(teams.c.name).where(teams.c.name == name).with_for_update())
            if members is not None:
                await conn.execute(update(teams).where(teams.c.name == name).values(created_at=teams.c.created_at))
                stored = (await conn.execute(select(team_members.c.user_id).where(team_members.c.team == name))).scalars()
                if sorted(stored) != sorted(members):
                    raise StaleWrite(f"team {name!r} was changed by another request meanwhile")
            await conn.execute(delete(team_members).where(team_members.c.team == name))
            result = await conn.execute(delete(teams).where(teams.c.name == name))
            if result.rowcount == 0:
                raise NotFound(f"team {name!r} does not exist")
            # Read after the row is locked (deleted, not yet committed): what another replica gave the team
            # is seen here, and what it gives it from now waits for this and finds no team (repo.py).
            owned = [
                *(f"upstream {n}" for n in (await conn.execute(select(upstreams.c.name).where(upstreams.c.team == name))).scalars()),
                *(f"virtual server {n}" for n in (await conn.execute(select(virtual_servers.c.name).where(virtual_servers.c.team == name))).scalars()),
            ]
            if owned:
                raise Conflict(f"team {name!r} still owns {', '.join(owned)}; give them to another team first")

    async def add_member(self, team: str, user_id: str) -> None:
        try:
            async with self.engine.begin() as conn:
                await self._team_and_user(conn, team, user_id)
                found = select(team_members).where(team_members.c.team == team, team_members.c.user_id == user_id)
                if (await conn.execute(found)).first() is None:
                    await conn.execute(insert(team_members).values(team=team, user_id=user_id))
        except IntegrityError:
            # Raced: the same member added meanwhile (done, as asked), or the team or user deleted (404).
            async with self.engine.connect() as conn:
                await self._team_and_user(conn, team, user_id)

    async def _team_and_user(self, conn: AsyncConnection, team: str, user_id: str) -> None:
        if (await conn.execute(select(teams.c.name).where(teams.c.name == team))).first() is None:
            raise NotFound(f"team {team!r} does not exist")
        if (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() is None:
            raise NotFound(f"user {user_id!r} does not exist")

    async def remove_member(self, team: str, user_id: str) -> None:
        async with self.engine.begin() as conn:
            where = (team_members.c.team == team, team_members.c.user_id == user_id)
            if (await conn.execute(delete(team_members).where(*where))).rowcount == 0:
                raise NotFound(f"user {user_id!r} is not a member of team {team!r}")

    async def create_session(self, session: Session, token_hash: str, *, password_hash: str | None = None) -> None:
        # Inserted from the user's row, so only while it is there and (for a password sign-in) still has
        # the password that was checked: a change or deletion that came first is not undone by it, and
        # one that comes after revokes it.
        user = users.c.id == session.user
        if password_hash is not None:
            user = user & (users.c.password_hash == password_hash)
        row = select(
            literal(session.id, user_sessions.c.id.type),
            users.c.id,
            literal(token_hash, user_sessions.c.token_hash.type),
            literal(session.created_at, user_sessions.c.created_at.type),
            literal(session.expires_at, user_sessions.c.expires_at.type),
        ).where(user)
        columns = ["id", "user_id", "token_hash", "created_at", "expires_at"]
        try:
            async with self.engine.begin() as conn:
                created = await conn.execute(insert(user_sessions).from_select(columns, row))
        except IntegrityError:
            created = None  # the user deleted as the session was inserted (ids and hashes never repeat)
        if created is None or created.rowcount != 1:
            raise NotFound(f"user {session.user!r} does not exist")

    async def get_session_by_hash(self, token_hash: str) -> Session | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(user_sessions).where(user_sessions.c.token_hash == token_hash))).first()
        if row is None:
            return None
        return Session(row.id, row.user_id, _utc(row.created_at), _utc(row.expires_at), _aware(row.revoked_at))

    async def revoke_session(self, session_id: str, at: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(user_sessions)
                .where(user_sessions.c.id == session_id, user_sessions.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    async def revoke_user_sessions(self, user_id: str, at: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(user_sessions)
                .where(user_sessions.c.user_id == user_id, user_sessions.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
