"""The token verifier on its own: admin and API tokens, the short cache, revocation, expiry, use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from bastion.auth.tokens import TokenVerifier, hash_token
from bastion.core.errors import Forbidden, ServiceUnavailable, Unauthenticated
from bastion.core.grants import ApiToken
from bastion.store.memory import MemoryRevocations

pytestmark = pytest.mark.anyio

ADMIN = "bst_admin"
SECRET = "bst_api"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


class FakeRepo:
    """Just the token lookups the verifier makes, counting them; `gate` lets a test hold a lookup."""

    def __init__(self, token: ApiToken) -> None:
        self.tokens = {hash_token(SECRET): token}
        self.lookups = 0
        self.touches: list[tuple[str, datetime, str | None]] = []
        self.gate: anyio.Event | None = None

    async def get_api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        self.lookups += 1
        found = self.tokens.get(token_hash)
        if self.gate is not None:
            await self.gate.wait()
        return found

    async def touch_api_token(self, token_id: str, at: datetime, ip: str | None) -> None:
        self.touches.append((token_id, at, ip))

    def revoke(self) -> None:
        digest = hash_token(SECRET)
        self.tokens[digest] = self.tokens[digest].model_copy(update={"revoked_at": T0})


def token(**fields: object) -> ApiToken:
    values: dict[str, object] = {"id": "t1", "name": "t", "servers": ("vs1",), "permissions": ("mcp",), "created_at": T0}
    return ApiToken.model_validate(values | fields)


def verifier(repo: FakeRepo, clock: Clock) -> TokenVerifier:
    return TokenVerifier(hash_token(ADMIN), repo, now=lambda: clock.wall, monotonic=lambda: clock.mono)  # type: ignore[arg-type]


async def test_admin_and_api_tokens_become_principals() -> None:
    clock, repo = Clock(), FakeRepo(token())
    check = verifier(repo, clock)
    admin = await check.verify(f"Bearer {ADMIN}", "127.0.0.1")
    assert (admin.id, admin.kind, admin.grants) == ("admin", "admin", None)
    assert repo.lookups == 0  # the admin token never touches the store
    api = await check.verify(f"bearer {SECRET}", "127.0.0.1")
    assert (api.id, api.kind) == ("token:t1", "token")
    assert api.grants is not None and api.grants.servers == frozenset({"vs1"})


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer bst_unknown"])
async def test_bad_headers_are_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        await verifier(FakeRepo(token()), Clock()).verify(header, "127.0.0.1")


async def test_lookups_are_cached_briefly_and_use_is_recorded_once_a_minute() -> None:
    clock, repo = Clock(), FakeRepo(token())
    check = verifier(repo, clock)
    for _ in range(5):
        await check.verify(f"Bearer {SECRET}", "127.0.0.1")
    assert repo.lookups == 1
    assert repo.touches == [("t1", T0, "127.0.0.1")]
    clock.advance(5)
    await check.verify(f"Bearer {SECRET}", "127.0.0.2")
    assert repo.lookups == 2 and len(repo.touches) == 1
    clock.advance(60)
    await check.verify(f"Bearer {SECRET}", "127.0.0.2")
    assert repo.touches[-1] == ("t1", T0 + timedelta(seconds=65), "127.0.0.2")


async def test_forget_makes_a_revocation_immediate() -> None:
    clock, repo = Clock(), FakeRepo(token())
    check = verifier(repo, clock)
    await check.verify(f"Bearer {SECRET}", None)
    repo.revoke()
    await check.verify(f"Bearer {SECRET}", None)  # still cached: nobody told this verifier
    check.forget("t1")
    with pytest.raises(Unauthenticated, match="revoked"):
        await check.verify(f"Bearer {SECRET}", None)


async def test_a_lookup_racing_a_revocation_does_not_cache_the_stale_token() -> None:
    clock, repo = Clock(), FakeRepo(token())
    check = verifier(repo, clock)
    repo.gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(check.verify, f"Bearer {SECRET}", None)  # reads the token before it is revoked
        await anyio.wait_all_tasks_blocked()
        repo.revoke()
        check.forget("t1")
        repo.gate.set()
    with pytest.raises(Unauthenticated, match="revoked"):
        await check.verify(f"Bearer {SECRET}", None)


async def test_expiry_is_checked_on_every_request_not_only_on_lookup() -> None:
    clock, repo = Clock(), FakeRepo(token(expires_at=T0 + timedelta(seconds=2)))
    check = verifier(repo, clock)
    await check.verify(f"Bearer {SECRET}", None)
    clock.wall += timedelta(seconds=2)  # wall time only: the cached copy is still fresh
    with pytest.raises(Unauthenticated, match="expired"):
        await check.verify(f"Bearer {SECRET}", None)


async def test_ip_allow() -> None:
    clock, repo = Clock(), FakeRepo(token(ip_allow=("10.0.0.0/8", "2001:db8::/32")))
    check = verifier(repo, clock)
    for allowed in ("10.9.8.7", "::ffff:10.0.0.1", "2001:db8::1"):
        await check.verify(f"Bearer {SECRET}", allowed)
    for refused in ("127.0.0.1", "::1", None, "garbage"):
        with pytest.raises(Forbidden):
            await check.verify(f"Bearer {SECRET}", refused)


async def test_without_a_repo_only_the_admin_token_passes() -> None:
    check = TokenVerifier(hash_token(ADMIN))
    assert (await check.verify(f"Bearer {ADMIN}", None)).kind == "admin"
    with pytest.raises(Unauthenticated):
        await check.verify(f"Bearer {SECRET}", None)


class UnreachableRevocations:
    """The shared revoked-ids list while Redis is down."""

    async def revoke(self, token_id: str, ttl: float) -> None:
        raise ServiceUnavailable("down")

    async def is_revoked(self, token_id: str) -> bool:
        raise ServiceUnavailable("down")


async def test_a_token_revoked_on_another_replica_is_refused_at_once_despite_the_cache() -> None:
    repo = FakeRepo(token())
    shared = MemoryRevocations()
    here = TokenVerifier(hash_token(ADMIN), repo, revocations=shared)  # type: ignore[arg-type]
    await here.verify(f"Bearer {SECRET}", None)  # cached now
    # Another replica revokes: the store and the shared list change, this verifier is not told.
    repo.revoke()
    await shared.revoke("t1", ttl=60)
    with pytest.raises(Unauthenticated):
        await here.verify(f"Bearer {SECRET}", None)


async def test_without_the_shared_list_the_cache_is_not_trusted_and_the_store_decides() -> None:
    repo = FakeRepo(token())
    down = UnreachableRevocations()
    here = TokenVerifier(hash_token(ADMIN), repo, revocations=down)  # type: ignore[arg-type]
    assert (await here.verify(f"Bearer {SECRET}", None)).token == "t1"
    lookups = repo.lookups
    assert (await here.verify(f"Bearer {SECRET}", None)).token == "t1"
    assert repo.lookups == lookups + 1  # asked the store rather than the cache
    repo.revoke()
    with pytest.raises(Unauthenticated):
        await here.verify(f"Bearer {SECRET}", None)
