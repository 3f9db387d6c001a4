"""Teams and their members. A team that still owns upstreams or virtual servers cannot be deleted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

from bastion.control.users import Users
from bastion.core.errors import BadRequest, Conflict, NotFound
from bastion.core.identity import Team
from bastion.core.naming import check_slug
from bastion.core.ports import IdentityRepo


async def _unchanged(_user: str) -> None:
    return None


class Teams:
    def __init__(
        self,
        repo: IdentityRepo,
        users: Users,
        owned_by: Callable[[str], list[str]],
        changed: Callable[[str], Awaitable[None]] = _unchanged,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        writing: Callable[[], AbstractAsyncContextManager[Any]] = nullcontext,
    ) -> None:
        self._repo = repo
        self._users = users
        self._owned_by = owned_by
        self._changed = changed
        self._now = now
        self._writing = writing  # held while upstreams and servers are saved: none is given to a team as it goes

    async def create(self, body: dict[str, Any]) -> Team:
        name = body.get("name")
        if not isinstance(name, str) or set(body) - {"name"}:
            raise BadRequest("a team is {\"name\": \"<slug>\"}")
        check_slug(name, "team")
        team = Team(name=name, created_at=self._now())
        await self._repo.create_team(team)
        return team

    async def list(self) -> list[Team]:
        return await self._repo.list_teams()

    async def get(self, name: str) -> Team:
        team = await self._repo.get_team(name)
        if team is None:
            raise NotFound(f"team {name!r} does not exist")
        return team

    async def exists(self, name: str) -> bool:
        return await self._repo.get_team(name) is not None

    async def delete(self, name: str, *, members: tuple[str, ...] | None = None) -> None:
        """Delete the team; with `members` (user ids), only if it still has exactly those, else StaleWrite."""
        async with self._writing():
            owned = self._owned_by(name)
            if owned:
                raise Conflict(f"team {name!r} still owns {', '.join(owned)}; give them to another team first")
            team = await self.get(name)
            await self._repo.delete_team(name, members=members)
        for member in team.members:
            await self._changed(member)

    async def add_member(self, name: str, user_key: str) -> Team:
        user = await self._users.get(user_key)
        await self._repo.add_member(name, user.id)
        await self._changed(user.id)
        return await self.get(name)

    async def remove_member(self, name: str, user_key: str) -> Team:
        user = await self._users.get(user_key)
        await self._repo.remove_member(name, user.id)
        await self._changed(user.id)
        return await self.get(name)
