"""Whether an OAuth grant still lives (what a grant-bound stream's re-check asks, `grant_alive`): the
in-memory repo and the SQL one (SQLite and PostgreSQL) keep one contract. A grant lives while its
family is not revoked, one of its refresh tokens has not run out, and its client is registered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.oauth import RefreshGrant, StoredClient
from bastion.store.memory_oauth import MemoryOAuthRepo
from bastion.store.sql.oauth import SqlOAuthRepo

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def repo(store_engine: AsyncEngine | None) -> MemoryOAuthRepo | SqlOAuthRepo:
    return MemoryOAuthRepo() if store_engine is None else SqlOAuthRepo(store_engine)


async def _grant(repo: MemoryOAuthRepo | SqlOAuthRepo, client: str, family: str, expires: datetime) -> None:
    await repo.save_client(StoredClient(client_id=client, metadata={"client_name": client}, created_at=NOW))
    await repo.save_refresh(RefreshGrant(
        token_hash=f"h-{family}", family=family, client_id=client, user_id="u1", resource="https://b/servers/vs/mcp",
        expires_at=expires,
    ))


async def test_a_grant_lives_until_revoked_run_out_or_its_client_is_gone(repo: MemoryOAuthRepo | SqlOAuthRepo) -> None:
    await _grant(repo, "c1", "f1", NOW + timedelta(days=30))
    await _grant(repo, "c2", "f2", NOW + timedelta(minutes=1))
    assert await repo.grant_alive("f1", "c1", NOW)
    assert not await repo.grant_alive("nope", "c1", NOW)
    assert await repo.grant_alive("f2", "c2", NOW) and not await repo.grant_alive("f2", "c2", NOW + timedelta(minutes=2))
    await repo.revoke_family("f1", NOW)
    assert not await repo.grant_alive("f1", "c1", NOW)
    await _grant(repo, "c3", "f3", NOW + timedelta(days=30))
    await repo.purge_clients(unused_before=NOW + timedelta(seconds=1), idle_before=NOW)
    assert not await repo.grant_alive("f3", "c3", NOW)
