"""What replicas share (Redis when configured, else this process) and how a replica says it is ready."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.app.access import OwnAuthorizationServer
from bastion.auth.oauth.provider import GrantRevoked
from bastion.auth.throttle import MemoryLoginThrottle
from bastion.auth.tokens import USER_REVOCATION, TokenVerifier
from bastion.config import Settings
from bastion.core.errors import ServiceUnavailable
from bastion.core.ports import (
    AskCallback,
    ChangeFeed,
    Leadership,
    LoginThrottle,
    RateLimiter,
    Readiness,
    Revocations,
    RevokeHandler,
    SessionStore,
)
from bastion.core.upstream_sessions import caller_digest, caller_key
from bastion.store.events import MemoryEventStore
from bastion.store.memory import AlwaysLeader, LocalChangeFeed, MemoryRateLimiter, MemoryRevocations
from bastion.store.sessions.keys import SessionKeys
from bastion.store.sessions.memory import MemorySessionStore
from bastion.store.sessions.redis import RedisEventStore, RedisSessionStore
from bastion.store.shared.client import RedisReadiness, make_redis
from bastion.store.shared.feed import RedisChangeFeed
from bastion.store.shared.leader import RedisLeadership
from bastion.store.shared.limits import RedisRateLimiter, RedisRevocations
from bastion.store.shared.throttle import RedisLoginThrottle
from bastion.store.sql.migrate import schema_is_current
from bastion.web.caller_roots import CallerRoots
from bastion.web.session_manager import EventsFor

log = logging.getLogger("bastion.auth")


@dataclass
class Shared:
    """State every replica shares: in Redis when BASTION_REDIS_URL is set, else in this process."""

    replica: str
    feed: ChangeFeed
    revocations: Revocations
    limiter: RateLimiter
    leadership: Leadership
    checks: Sequence[Readiness]
    throttle: LoginThrottle
    redis: Redis | None = None
    """The one Redis client of this replica (shared state and sessions alike), when configured."""


@asynccontextmanager
async def shared_state(settings: Settings) -> AsyncIterator[Shared]:
    replica = uuid.uuid4().hex[:12]
    if settings.redis_url is None:
        throttle = MemoryLoginThrottle(**login_limits(settings))
        yield Shared(replica, LocalChangeFeed(), MemoryRevocations(), MemoryRateLimiter(), AlwaysLeader(), (), throttle)
        return
    redis = make_redis(settings.redis_url)
    prefix = settings.redis_prefix
    try:
        yield Shared(
            replica,
            RedisChangeFeed(redis, prefix, replica),
            RedisRevocations(redis, prefix),
            RedisRateLimiter(redis, prefix),
            RedisLeadership(redis, prefix, replica, lease=settings.leader_lease),
            (RedisReadiness(redis),),
            RedisLoginThrottle(redis, prefix, **login_limits(settings)),
            redis,
        )
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            await redis.aclose()


def login_limits(settings: Settings) -> dict[str, Any]:
    """The login throttle's limits, the same for the in-process and the Redis throttle."""
    return {
        "max_failures": settings.login_max_failures,
        "max_ip_failures": settings.login_max_ip_failures,
        "max_account_failures": settings.login_max_account_failures,
        "lockout": settings.login_lockout,
        "account_lockout": settings.login_account_lockout,
    }


async def readiness(engine: AsyncEngine, checks: Sequence[Readiness] = ()) -> list[str]:
    """What keeps this replica from serving: the database unreachable or its schema not current,
    or a shared dependency (Redis) unreachable."""
    try:
        with anyio.fail_after(5):
            current = await schema_is_current(engine)
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", said without its details
        problems = [f"database unreachable ({type(exc).__name__})"]
    else:
        problems = [] if current else ["database schema is not at the newest migration"]
    for check in checks:
        problem = await check.problem()
        if problem is not None:
            problems.append(problem)
    return problems


def session_stores(settings: Settings, keys: SessionKeys, redis: Redis | None) -> tuple[SessionStore, EventsFor]:
    """Where 2025-11-25 session records and their resumable events live: Redis when configured
    (any replica serves any session), else this process."""
    if redis is not None:
        events = RedisEventStore(redis, settings.redis_prefix, keys, ttl=settings.session_idle_ttl)
        return RedisSessionStore(redis, settings.redis_prefix, keys, settings.session_idle_ttl), events.for_session
    return MemorySessionStore(keys, settings.session_idle_ttl), MemoryEventStore().for_session


def revocation_hooks(
    verifier: TokenVerifier,
    own: OwnAuthorizationServer | None,
    shared: Shared,
    recheck_streams: Callable[[str], None] | None = None,
) -> tuple[RevokeHandler, RevokeHandler]:
    """(revoke here and tell every replica, drop from this replica's caches when told): for API
    tokens and sign-in sessions by id, and `user:<id>` when a user's access changed. Either way the
    streams open on this replica are then re-checked (`recheck_streams`, which only starts that in
    the background: neither the revoking request nor the change feed waits for it)."""

    def forget(token_id: str) -> None:
        if token_id.startswith(USER_REVOCATION):
            user_id = token_id.removeprefix(USER_REVOCATION)
            verifier.forget_user(user_id)
            if own is not None:
                own.verifier.forget_user(user_id)
        else:
            verifier.forget(token_id)

    async def revoked_elsewhere(token_id: str) -> None:
        forget(token_id)
        if recheck_streams is not None:
            recheck_streams(token_id)

    async def revoke_everywhere(token_id: str) -> None:
        forget(token_id)
        try:
            # Kept a while past any replica's cache lifetime; after that the store answers.
            await shared.revocations.revoke(token_id, verifier.cache_ttl + 60)
        except ServiceUnavailable:
            pass  # Redis down: replicas that cannot read the list ask the store instead
        await shared.feed.publish_revocation(token_id)
        if recheck_streams is not None:
            recheck_streams(token_id)

    return revoke_everywhere, revoked_elsewhere


class RootsEverywhere:
    """A 2025-11-25 caller's `notifications/roots/list_changed`, which reaches one replica: its own
    upstream sessions here are told (`UpstreamPool.roots_changed`), and every other replica, which
    may hold own sessions of the same caller (its session is served by any replica) but cannot ask
    it, is told to end them (`UpstreamPool.roots_changed_elsewhere`): the caller's next call there
    opens a new one, which asks it for its roots. The feed carries `caller_digest` of the caller's key.
    Announcing never fails the notice (the feed logs Redis being away)."""

    def __init__(self, here: CallerRoots, feed: ChangeFeed) -> None:
        self._here = here
        self._feed = feed

    async def roots_changed(self, user: str | None, session: str, ask: AskCallback | None) -> None:
        try:
            await self._feed.publish_roots(caller_digest(caller_key(user, session, None)))
        except Exception as exc:  # noqa: BLE001 - the notice is still passed on here
            log.warning("a caller's changed roots could not be announced to the other replicas (%s)", type(exc).__name__)
        await self._here.roots_changed(user, session, ask)


def grant_revocation_hook(shared: Shared, recheck_streams: Callable[[str], None] | None = None) -> GrantRevoked:
    """What revoking an OAuth grant (`sid:<family>`) sets off: the streams open on this replica are
    re-checked (in the background), and every other replica is told to re-check its own. The grant's
    state is in the database, which those re-checks read: nothing else is shared or cached."""

    async def grant_revoked(revocation: str) -> None:
        if recheck_streams is not None:
            recheck_streams(revocation)
        try:
            await shared.feed.publish_revocation(revocation)
        except ServiceUnavailable:  # the revocation is stored: the others' periodic pass ends its streams
            log.warning("a revoked grant could not be announced to the other replicas (the change feed is unavailable)")

    return grant_revoked
