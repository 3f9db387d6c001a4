"""The composition root: the one place that reads settings and wires adapters together."""

from __future__ import annotations

import hmac
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
    own_user_grants,
    owned_by,
    provider_sign_in,
    resource_metadata,
    server_access,
)
from bastion.app.keys import load_keys
from bastion.app.network import outbound
from bastion.app.observability import Telemetry, build_telemetry
from bastion.app.shared import (
    RootsEverywhere,
    Shared,
    grant_revocation_hook,
    readiness,
    revocation_hooks,
    session_stores,
    shared_state,
)
from bastion.auth.bearer import BearerVerifier, JwtVerifier
from bastion.auth.passwords import Passwords
from bastion.auth.tokens import TokenVerifier, load_admin_token, user_revocation
from bastion.config import Settings
from bastion.control.approvals import Approvals
from bastion.control.config_sync import ConfigSync
from bastion.control.duplicates import Duplicates
from bastion.control.gateway import Gateway
from bastion.control.login import Login
from bastion.control.policy_subjects import PolicySubjects
from bastion.control.registry import Registries
from bastion.control.teams import Teams
from bastion.control.tokens import ApiTokens
from bastion.control.upstream_connect import UpstreamConnect
from bastion.control.users import Users
from bastion.core.launch import parse_rules
from bastion.core.ports import Leadership
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.bridge import Bridge
from bastion.pipeline.build import build_pipeline
from bastion.store.sessions.keys import SessionKeys
from bastion.store.shared.calls import RedisCallBoard
from bastion.store.sql.agent_tasks import SqlAgentTaskHolders
from bastion.store.sql.identity import SqlIdentityRepo
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.registry import SqlRegistryRepo
from bastion.store.sql.repo import SqlConfigRepo, make_engine
from bastion.store.sql.user_tokens import SqlUpstreamTokens
from bastion.tasks import TaskRunner
from bastion.upstream.caller_sessions import Limits
from bastion.upstream.discovery import DiscoveryLimits
from bastion.upstream.guard import AddressGuard
from bastion.upstream.launch_guard import LaunchGuard
from bastion.upstream.pool import UpstreamPool
from bastion.vault.crypto import Sealer
from bastion.vault.envelope import Envelope
from bastion.web.admin.app import admin_app
from bastion.web.asgi import BastionApp, PublicEndpoints, rest_app
from bastion.web.audited import Audited
from bastion.web.headers import security_headers
from bastion.web.hosts import allowed_hosts
from bastion.web.mcp_endpoint import McpFront
from bastion.web.rest.admin_doc import admin_doc_routes
from bastion.web.rest.approvals import approval_routes
from bastion.web.rest.auth import auth_routes
from bastion.web.rest.catalog import catalog_routes
from bastion.web.rest.cluster import cluster_routes
from bastion.web.rest.config import config_routes
from bastion.web.rest.duplicates import duplicate_routes
from bastion.web.rest.facade import CALL_ROUTES, Facade
from bastion.web.rest.facade_calls import AsyncCalls
from bastion.web.rest.facade_fast import FacadeFast
from bastion.web.rest.registries import registry_routes
from bastion.web.rest.registry_serve import registry_serve_routes
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
    telemetry: Telemetry | None = None
    registries: Registries | None = None
    config: ConfigSync | None = None


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Bastion]:
    """Start everything Bastion needs; stop it all, upstream children included, on exit."""
    keys = load_keys(settings)  # refuses to start without keys every replica agrees on
    envelope = Envelope(keys.vault)
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
            sealer = Sealer(keys.state)
            own = own_authorization_server(settings, engine, sealer, identity, shared.revocations)
            front_ref: list[McpFront] = []

            def recheck_streams(revoked: str) -> None:
                if front_ref:
                    front_ref[0].recheck(revoked)

            revoke_everywhere, revoked_elsewhere = revocation_hooks(verifier, own, shared, recheck_streams)

            async def forget_user(user_id: str) -> None:
                await revoke_everywhere(user_revocation(user_id))

            grant_revoked = grant_revocation_hook(shared, recheck_streams) if own is not None else None
            user_grants = own_user_grants(own, settings, grant_revoked)
            users = Users(identity, passwords, forget_user, grants=user_grants)
            if settings.admin_email and settings.admin_password:
                await users.ensure_admin(settings.admin_email, settings.admin_password.get_secret_value())
            runner = TaskRunner(tg)
            telemetry = build_telemetry(settings, engine, shared.replica, keys)
            gateway_ref: list[Gateway] = []

            async def on_notification(upstream: str, method: str) -> None:
                await gateway_ref[0].upstream_changed(upstream, method)

            async def on_resource_updated(upstream: str, uri: str) -> None:
                await front_ref[0].resource_updated(upstream, uri)

            user_tokens = SqlUpstreamTokens(engine, envelope)
            stdio_rules = parse_rules(settings.stdio_commands)
            network = outbound(settings)
            pool = UpstreamPool(
                runner,
                agent_tasks=SqlAgentTaskHolders(engine),
                agent_task_ttl=settings.agent_task_ttl,
                on_notification=on_notification,
                on_resource_updated=on_resource_updated,
                connect_timeout=settings.connect_timeout,
                outbound=network,
                backoff_base=settings.reconnect_backoff,
                launch_guard=LaunchGuard(stdio_rules, identity.get_user),
                user_tokens=user_tokens,
                caller_limits=Limits(
                    per_upstream=settings.upstream_sessions_per_upstream,
                    per_user=settings.upstream_sessions_per_user,
                    stdio_per_upstream=settings.upstream_processes_per_upstream,
                ),
                limits=DiscoveryLimits(settings.upstream_max_items, settings.upstream_max_pages),
                max_response_bytes=settings.upstream_max_response_bytes,
            )
            gateway = Gateway(
                repo,
                pool,
                runner,
                health_interval=settings.health_interval,
                feed=shared.feed,
                leadership=shared.leadership,
                team_exists=lambda team: _team_exists(identity, team),
            )
            gateway_ref.append(gateway)
            server_info: dict[str, Any] = {"name": "bastion", "version": __version__}
            bridge = Bridge(
                pool,
                sealer,
                runner.spawn,
                settings.held_call_ttl,
                per_caller=settings.held_calls_per_caller,
                total=settings.held_calls_total,
            )
            oidc = oidc_verifier(settings, network)
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
                observers=telemetry.batch,
                tracer=telemetry.tracer,
                subscriber=pool,
            )
            session_keys = SessionKeys(keys.sessions)
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
                pipeline,
                runner,
                gateway.current,
                settings.max_body_bytes,
                events_for,
                subscriber=pool,
                roots=RootsEverywhere(pool, shared.feed),
                shared=sessions,
                # Re-checking an idle caller's open stream must not mark its token used; a stream
                # an OAuth grant opened is judged by the grant (`admit_grant`, re-checks only).
                authenticator=Authenticator(
                    BearerVerifier(verifier.unrecorded(), jwt_issuers), own.verifier if own is not None else None
                ),
                session_idle=settings.session_idle_ttl,
                sessions_per_caller=settings.mcp_sessions_per_caller,
                sessions_per_server=settings.mcp_sessions_per_server,
            )
            front_ref.append(front)
            gateway.on_change(front.on_change)

            tokens = ApiTokens(repo, lambda: gateway.snapshot.servers, revoke_everywhere)
            subjects = PolicySubjects(identity, repo, external=settings.oidc_issuer is not None)
            teams = Teams(identity, users, partial(owned_by, gateway), forget_user, writing=gateway.writing)
            login = Login(identity, passwords, shared.throttle, settings.session_ttl, revoke_everywhere)
            may_use = server_access(gateway)
            duplicates = Duplicates(gateway)
            registries = Registries(SqlRegistryRepo(engine), gateway, pool.http, deadline=settings.registry_timeout)
            config = ConfigSync(gateway, teams, users, registries, subjects)
            public = None
            if own is not None:
                public = oauth_endpoints(own, settings, identity, login, may_use, network, shared.limiter, grant_revoked)
            connect = UpstreamConnect(
                gateway,
                user_tokens,
                pool.http,
                settings.base_url,
                guard=AddressGuard(network),
                timeout=settings.connect_timeout,
            )
            start_page = StartPage(connect, login, identity, settings.base_url)
            facade = Facade(
                pipeline,
                gateway.current,
                may_use,
                settings.max_body_bytes,
                settings.base_url,
                AsyncCalls(
                    pipeline, runner.spawn, settings.held_call_ttl,
                    None if shared.redis is None else RedisCallBoard(shared.redis, settings.redis_prefix, sealer),
                    per_caller=settings.facade_calls_per_caller,
                    total=settings.facade_calls_total,
                ),
            )
            public = joined(public, callback_endpoint(connect, start_page))
            routes = [
                *upstream_routes(gateway, settings.max_body_bytes, teams.exists, stdio_rules, duplicates),
                *catalog_routes(gateway, settings.max_body_bytes),
                *approval_routes(Approvals(gateway)),
                *duplicate_routes(duplicates),
                *registry_routes(registries, settings.max_body_bytes, teams.exists),
                *registry_serve_routes(gateway, settings.base_url, may_use),
                *server_routes(gateway, settings.max_body_bytes, settings.base_url, teams.exists, subjects),
                *facade.routes(),
                *token_routes(tokens, settings.max_body_bytes, may_use),
                *auth_routes(login, users),
                *user_routes(users, settings.max_body_bytes),
                *team_routes(teams, settings.max_body_bytes),
                *config_routes(config, settings.max_body_bytes),
                *vault_routes(gateway),
                *connection_routes(connect),
                *cluster_routes(gateway, shared.replica, shared.leadership.is_leader),
                *telemetry.routes(gateway.current),
            ]
            app_ref: list[BastionApp] = []
            provider = provider_sign_in(
                settings, network, identity, login, sealer, shared.revocations, telemetry.edge_observers, forget_user
            )
            csrf_key = hmac.digest(keys.state, b"bastion admin ui csrf", "sha256")
            admin = admin_app(
                lambda: app_ref[0], settings.base_url, csrf_key, provider,
                public_url=settings.public_url, max_body=settings.max_body_bytes,
            )
            telemetry.watch(gateway.current, pool, front, bridge)
            if public is not None:
                public = PublicEndpoints(public.paths, Audited(public.app, (), telemetry.edge_observers))
            routes += admin_doc_routes(list(routes), settings.base_url)
            # Plain tool calls of the facade take its fast path; the rest is routed, and audited as
            # changes where it changes something (facade calls are audited by the pipeline).
            rest = Audited(rest_app(routes), routes, telemetry.edge_observers, uses=CALL_ROUTES)
            app = BastionApp(
                FacadeFast(facade, rest),
                front,
                authenticator,
                settings.allowed_origins,
                partial(readiness, engine, shared.checks),
                security_headers(settings.base_url),
                resource_metadata(settings, own),
                may_use=may_use,
                public=public,
                admin=admin,
                observers=telemetry.edge_observers,
                metrics=telemetry.endpoint,
                hosts=allowed_hosts(settings.public_url, settings.host, settings.allowed_hosts),
            )
            app_ref.append(app)
            await gateway.start()
            runner.spawn("leader-lease", shared.leadership.run)
            runner.spawn("change-feed", shared.feed.run, gateway.reload, revoked_elsewhere, pool.roots_changed_elsewhere)
            runner.spawn("stream-recheck", recheck_streams_every, front, settings.stream_recheck_interval)
            telemetry.start(runner, shared.leadership.is_leader)
            runner.spawn(
                "registry-refresh", refresh_registries, registries, settings.registry_refresh_interval, shared.leadership
            )
            try:
                yield Bastion(settings, engine, gateway, pool, front, app, generated, shared, telemetry, registries, config)
            finally:
                await telemetry.close()  # after uvicorn drained in-flight calls: their records are written
                await front.aclose()
                await pool.aclose()
                await network.aclose()
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await engine.dispose()


async def recheck_streams_every(front: McpFront, interval: float) -> None:
    """Now and then, end the open streams whose credential has expired since (revocations end theirs at once)."""
    while True:
        await anyio.sleep(interval)
        front.recheck()


async def refresh_registries(registries: Registries, interval: float, leadership: Leadership) -> None:
    """Refresh every registry source's cached listing now and then (the leader only)."""
    while True:
        await anyio.sleep(interval)
        if leadership.is_leader():
            await registries.refresh_all()


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


async def _team_exists(identity: SqlIdentityRepo, team: str) -> bool:
    return await identity.get_team(team) is not None
