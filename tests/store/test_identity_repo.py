"""The IdentityRepo port: the in-memory adapter and the SQL one (SQLite, PostgreSQL) behave alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bastion.core.errors import Conflict, NotFound
from bastion.core.identity import Team, User
from bastion.core.ports import IdentityRepo, Session
from bastion.store.identity_memory import MemoryIdentityRepo
from bastion.store.sql.identity import SqlIdentityRepo
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import make_engine
from tests.store.test_migrations import fresh_database

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@asynccontextmanager
async def repo_for(kind: str, tmp_path: Path) -> AsyncIterator[IdentityRepo]:
    if kind == "memory":
        yield MemoryIdentityRepo()
        return
    async with fresh_database(kind, tmp_path) as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            yield SqlIdentityRepo(engine)
        finally:
            await engine.dispose()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
async def test_users_teams_and_sessions(kind: str, tmp_path: Path) -> None:
    async with repo_for(kind, tmp_path) as repo:
        ada = User(id="u1", email="ada@example.com", role="developer", created_at=NOW)
        await repo.create_user(ada, "hash-1")
        with pytest.raises(Conflict):
            await repo.create_user(ada.model_copy(update={"id": "u2"}), "hash-2")
        await repo.create_team(Team(name="alpha", created_at=NOW))
        await repo.add_member("alpha", "u1")
        await repo.add_member("alpha", "u1")  # twice is once
        found = await repo.find_login("ada@example.com")
        assert found is not None and found[0].teams == ("alpha",) and found[1] == "hash-1"
        assert [t.members for t in await repo.list_teams()] == [("u1",)]
        changed = await repo.update_user("u1", active=False, password_hash="hash-3")
        assert changed.active is False and changed.role == "developer"
        assert (await repo.find_login("ada@example.com")) == (changed, "hash-3")

        session = Session(id="s1", user="u1", created_at=NOW, expires_at=NOW + timedelta(hours=1))
        await repo.create_session(session, "digest")
        assert await repo.get_session_by_hash("digest") == session
        await repo.revoke_user_sessions("u1", NOW)
        revoked = await repo.get_session_by_hash("digest")
        assert revoked is not None and revoked.revoked_at == NOW

        await repo.remove_member("alpha", "u1")
        with pytest.raises(NotFound):
            await repo.remove_member("alpha", "u1")
        await repo.delete_user("u1")
        assert await repo.get_user("u1") is None and await repo.get_session_by_hash("digest") is None
        await repo.delete_team("alpha")
        with pytest.raises(NotFound):
            await repo.add_member("alpha", "u1")
