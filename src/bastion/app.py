"""The composition root: the one place that reads settings and wires adapters together."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from dataclasses import dataclass
from typing import Any

import anyio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from bastion import __version__
from bastion.auth.tokens import TokenVerifier, load_admin_token
from bastion.config import Settings
from bastion.control.gateway import Gateway
from bastion.control.tokens import ApiTokens
from bastion.core.ports import SessionStore
from bastion.pipeline.bridge import Bridge
from bastion.pipeline.build import build_pipeline
from bastion.store.events import MemoryEventStore
from bastion.store.sessions.keys import SessionKeys
from bastion.store.sessions.memory import MemorySessionStore
from bastion.store.sessions.redis import RedisEventStore, RedisSessionStore
from bastion.store.sql.migrate import schema_is_current, upgrade
from bastion.store.sql.repo import SqlConfigRepo, make_engine
from bastion.tasks import TaskRunner
from bastion.upstream.pool import UpstreamPool
from bastion.vault.crypto import Sealer
from bastion.web.asgi import BastionApp, rest_app
from bastion.web.mcp_endpoint import McpFront
from bastion.web.rest.catalog import catalog_routes
from bastion.web.rest.servers import server_routes
from bastion.web.rest.tokens import token_routes
from bastion.web.rest.upstreams import upstream_routes
from bastion.web.sdk_sessions import EventsFor
from bastion.web.shared_sessions import SharedSessions


@dataclass
class Bastion:
    """A running gateway: what tests, the CLI and the ASGI server hold on to."""

    settings: Settings
    engine: AsyncEngine
    gateway: Gateway
    pool: UpstreamPool
    front: McpFront
    app: BastionApp
    generated_token: str | None


async def readiness(engine: AsyncEngine) -> list[str]:
    """What keeps this replica from serving: the database unreachable, or its schema not current."""
    try:
        with anyio.fail_after(5):
            current = await schema_is_current(engine)
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", said without its details
        return [f"database unreachable ({type(exc).__name__})"]
    return [] if current else ["database schema is not at the newest migration"]


def state_key(settings: Settings) -> bytes:
    """The key that seals client-carried state: from settings, or random for this process only."""
    if settings.state_key is None:
        return os.urandom(32)
    try:
        key = base64.b64decode(settings.state_key.get_secret_value(), validate=True)
    except ValueError:
        raise ValueError("BASTION_STATE_KEY must be base64") from None
    if len(key) != 32:
        raise ValueError("BASTION_STATE_KEY must decode to 32 bytes")
    return key


def session_stores(settings: Settings, keys: SessionKeys, redis: Redis | None) -> tuple[SessionStore, EventsFor]:
    """Where 2025-11-25 session records and their resumable events live: Redis when configured
    (any replica serves any session), else this process."""
    if redis is not None:
        events = RedisEventStore(redis, settings.redis_prefix, keys, ttl=settings.session_idle_ttl)
        return RedisSessionStore(redis, settings.redis_prefix, keys, settings.session_idle_ttl), events.for_session
    return MemorySessionStore(keys, settings.session_idle_ttl), MemoryEventStore().for_session


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Bastion]:
    """Start everything Bastion needs; stop it all, upstream children included, on exit."""
    engine = make_engine(settings.database_url, settings.database_pool_size)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    try:
        await upgrade(engine)
        repo = SqlConfigRepo(engine)
        configured = settings.admin_token.get_secret_value() if settings.admin_token else None
        token_hash, generated = await load_admin_token(repo, configured)
        async with anyio.create_task_group() as tg:
            runner = TaskRunner(tg)
            gateway_ref: list[Gateway] = []
            front_ref: list[McpFront] = []

            async def on_notification(upstream: str, method: str) -> None:
                await gateway_ref[0].upstream_changed(upstream, method)

            async def on_resource_updated(upstream: str, uri: str) -> None:
                await front_ref[0].resource_updated(upstream, uri)

            pool = UpstreamPool(
                runner,
                on_notification=on_notification,
                on_resource_updated=on_resource_updated,
                connect_timeout=settings.connect_timeout,
                backoff_base=settings.reconnect_backoff,
            )
            gateway = Gateway(repo, pool, runner, health_interval=settings.health_interval)
            gateway_ref.append(gateway)
            server_info: dict[str, Any] = {"name": "bastion", "version": __version__}
            key = state_key(settings)
            bridge = Bridge(pool, Sealer(key), runner.spawn, settings.held_call_ttl)
            pipeline = build_pipeline(
                gateway.current,
                pool,
                timeout=settings.call_timeout,
                server_info=server_info,
                page_size=settings.page_size,
                bridge=bridge,
            )
            session_keys = SessionKeys(key)
            session_store, events_for = session_stores(settings, session_keys, redis)
            shared = SharedSessions(
                session_store,
                session_keys,
                lambda name: gateway.current().servers.get(name),
                pool,
                settings.session_idle_ttl,
            )
            runner.spawn("session-changes", session_store.watch, shared.on_change, shared.on_relayed)
            front = McpFront(
                pipeline, runner, gateway.current, settings.max_body_bytes, events_for, subscriber=pool, shared=shared
            )
            front_ref.append(front)
            gateway.on_change(front.on_change)
            verifier = TokenVerifier(token_hash, repo)
            tokens = ApiTokens(repo, lambda: gateway.snapshot.servers, verifier.forget)
            routes = [
                *upstream_routes(gateway, settings.max_body_bytes),
                *catalog_routes(gateway, settings.max_body_bytes),
                *server_routes(gateway, settings.max_body_bytes, settings.base_url),
                *token_routes(tokens, settings.max_body_bytes),
            ]
            app = BastionApp(rest_app(routes), front, verifier, settings.allowed_origins, partial(readiness, engine))
            await gateway.start()
            try:
                yield Bastion(settings, engine, gateway, pool, front, app, generated)
            finally:
                await front.aclose()
                await pool.aclose()
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await engine.dispose()
            if redis is not None:
                await redis.aclose()


StartedHook = Callable[[Bastion], Awaitable[None]]


class LifespanApp:
    """ASGI app whose lifespan starts and stops a Bastion; HTTP goes to the running one."""

    def __init__(self, settings: Settings, on_started: StartedHook | None = None) -> None:
        self.settings = settings
        self.on_started = on_started
        self.bastion: Bastion | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.bastion is None:
            raise RuntimeError("Bastion is not started: the ASGI server must run the lifespan")
        await self.bastion.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        started = False
        try:
            async with running(self.settings) as bastion:
                self.bastion = bastion
                if self.on_started is not None:
                    await self.on_started(bastion)
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
                self.bastion = None
        except BaseException as exc:
            if not started and not isinstance(exc, anyio.get_cancelled_exc_class()):
                await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            raise
        await send({"type": "lifespan.shutdown.complete"})
