"""The composition root: the one place that reads settings and wires adapters together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from bastion import __version__
from bastion.app.access import (
    oauth_endpoints,
    oidc_verifier,
    own_authorization_server,
    owned_by,
    resource_metadata,
    server_access,
)
from bastion.app.keys import state_key, vault_key_ring
from bastion.app.shared import Shared, readiness, revocation_hooks, session_stores, shared_state
from bastion.auth.bearer import BearerVerifier, JwtVerifier
from bastion.auth.passwords import Passwords
from bastion.auth.tokens import TokenVerifier, load_admin_token, user_revocation
from bastion.config import Settings
from bastion.control.gateway import Gateway
from bastion.control.login import Login
from bastion.control.teams import Teams
from bastion.control.tokens import ApiTokens
from bastion.control.upstream_connect import UpstreamConnect
from bastion.control.users import Users
from bastion.core.grants import parse_networks
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.bridge import Bridge
from bastion.pipeline.build import build_pipeline
from bastion.store.sessions.keys import SessionKeys
from bastion.store.sql.identity import SqlIdentityRepo
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import SqlConfigRepo, make_engine
from bastion.store.sql.user_tokens import SqlUpstreamTokens
from bastion.tasks import TaskRunner
from bastion.upstream.guard import AddressGuard
from bastion.upstream.pool import UpstreamPool
from bastion.vault.crypto import Sealer
from bastion.vault.envelope import Envelope
from bastion.web.asgi import BastionApp, rest_app
from bastion.web.headers import security_headers
from bastion.web.mcp_endpoint import McpFront
from bastion.web.rest.auth import auth_routes
from bastion.web.rest.catalog import catalog_routes
from bastion.web.rest.cluster import cluster_routes
from bastion.web.rest.servers import server_routes
from bastion.web.rest.teams import team_routes
from bastion.web.rest.tokens import token_routes
from bastion.web.rest.upstream_connect import callback_endpoint, connection_routes, joined
from bastion.web.rest.upstreams import upstream_routes
from bastion.web.rest.users import user_routes
from bastion.web.rest.vault import vault_routes
from bastion.web.shared_sessions import SharedSessions
from bastion.web.upstream_start import StartPage


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
    shared: Shared


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Bastion]:
    """Start everything Bastion needs; stop it all, upstream children included, on exit."""
    envelope = Envelope(vault_key_ring(settings))
    engine = make_engine(settings.database_url, settings.database_pool_size)
    try:
        await upgrade(engine)
        repo = SqlConfigRepo(engine, envelope)
        await repo.seal_plaintext_secrets()
        configured = settings.admin_token.get_secret_value() if settings.admin_token else None
        token_hash, generated = await load_admin_token(repo, configured)
        identity = SqlIdentityRepo(engine)
        passwords = Passwords()
        async with shared_state(settings) as shared, anyio.create_task_group() as tg:
            verifier = TokenVerifier(token_hash, repo, identity=identity, revocations=shared.revocations)
            key = state_key(settings)
            sealer = Sealer(key)
            own = own_authorization_server(settings, engine, sealer, identity, shared.revocations)
            revoke_everywhere, revoked_elsewhere = revocation_hooks(verifier, own, shared)

            async def forget_user(user_id: str) -> None:
                await revoke_everywhere(user_revocation(user_id))

            users = Users(identity, passwords, forget_user)
            if settings.admin_email and settings.admin_password:
                await users.ensure_admin(settings.admin_email, settings.admin_password.get_secret_value())
            runner = TaskRunner(tg)
            gateway_ref: list[Gateway] = []
            front_ref: list[McpFront] = []

            async def on_notification(upstream: str, method: str) -> None:
                await gateway_ref[0].upstream_changed(upstream, method)

            async def on_resource_updated(upstream: str, uri: str) -> None:
                await front_ref[0].resource_updated(upstream, uri)

            user_tokens = SqlUpstreamTokens(engine, envelope)
            guard = AddressGuard(
                allow_private=settings.allow_private_upstreams,
                allowed=parse_networks(settings.upstream_allowed_networks),
            )
            pool = UpstreamPool(
                runner,
                on_notification=on_notification,
                on_resource_updated=on_resource_updated,
                connect_timeout=settings.connect_timeout,
                backoff_base=settings.reconnect_backoff,
                guard=guard,
                user_tokens=user_tokens,
            )
            gateway = Gateway(
                repo,
                pool,
                runner,
                health_interval=settings.health_interval,
                feed=shared.feed,
                leadership=shared.leadership,
            )
            gateway_ref.append(gateway)
            server_info: dict[str, Any] = {"name": "bastion", "version": __version__}
            bridge = Bridge(pool, sealer, runner.spawn, settings.held_call_ttl)
            oidc = oidc_verifier(settings, pool.http)
            jwt_issuers: dict[str, JwtVerifier] = {}
            if oidc is not None and settings.oidc_issuer is not None:
                jwt_issuers[settings.oidc_issuer] = oidc
            if own is not None:
                jwt_issuers[own.issuer] = own.verifier
            # One authenticator for the edge (early 401s) and the pipeline (the decision).
            authenticator = Authenticator(BearerVerifier(verifier, jwt_issuers))
            pipeline = build_pipeline(
                gateway.current,
                pool,
                authenticator,
                timeout=settings.call_timeout,
                server_info=server_info,
                page_size=settings.page_size,
                bridge=bridge,
                limiter=shared.limiter,
                limits=settings.rate_limits,
                subscriber=pool,
            )
            session_keys = SessionKeys(key)
            session_store, events_for = session_stores(settings, session_keys, shared.redis)
            sessions = SharedSessions(
                session_store,
                session_keys,
                lambda name: gateway.current().servers.get(name),
                pool,
                settings.session_idle_ttl,
            )
            runner.spawn("session-changes", session_store.watch, sessions.on_change, sessions.on_relayed)
            front = McpFront(
                pipeline, runner, gateway.current, settings.max_body_bytes, events_for, subscriber=pool, shared=sessions
            )
            front_ref.append(front)
            gateway.on_change(front.on_change)

            tokens = ApiTokens(repo, lambda: gateway.snapshot.servers, revoke_everywhere)
            teams = Teams(identity, users, partial(owned_by, gateway), forget_user)
            login = Login(identity, passwords, shared.throttle, settings.session_ttl, revoke_everywhere)
            may_use = server_access(gateway)
            public = oauth_endpoints(own, settings, identity, login, may_use, pool.http) if own is not None else None
            connect = UpstreamConnect(
                gateway, user_tokens, pool.http, settings.base_url, guard=guard, timeout=settings.connect_timeout
            )
            start_page = StartPage(connect, login, identity, settings.base_url)
            public = joined(public, callback_endpoint(connect, start_page))
            routes = [
                *upstream_routes(gateway, settings.max_body_bytes, teams.exists),
                *catalog_routes(gateway, settings.max_body_bytes),
                *server_routes(gateway, settings.max_body_bytes, settings.base_url, teams.exists),
                *token_routes(tokens, settings.max_body_bytes, may_use),
                *auth_routes(login, users),
                *user_routes(users, settings.max_body_bytes),
                *team_routes(teams, settings.max_body_bytes),
                *vault_routes(gateway),
                *connection_routes(connect),
                *cluster_routes(gateway, shared.replica, shared.leadership.is_leader),
            ]
            app = BastionApp(
                rest_app(routes),
                front,
                authenticator,
                settings.allowed_origins,
                partial(readiness, engine, shared.checks),
                security_headers(settings.base_url),
                resource_metadata(settings, own),
                may_use=may_use,
                public=public,
            )
            await gateway.start()
            runner.spawn("leader-lease", shared.leadership.run)
            runner.spawn("change-feed", shared.feed.run, gateway.reload, revoked_elsewhere)
            try:
                yield Bastion(settings, engine, gateway, pool, front, app, generated, shared)
            finally:
                await front.aclose()
                await pool.aclose()
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await engine.dispose()


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
