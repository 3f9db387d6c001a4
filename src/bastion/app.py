"""The composition root: the one place that reads settings and wires adapters together."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import httpx2
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from bastion import __version__
from bastion.auth.bearer import BearerVerifier, JwtVerifier
from bastion.auth.oauth.clients import Clients
from bastion.auth.oauth.keys import SigningKeys
from bastion.auth.oauth.provider import AuthorizationServer, ServerConfig
from bastion.auth.oauth.revoked import RevokedTokens
from bastion.auth.oauth.verify import OwnTokenVerifier
from bastion.auth.oidc import OidcConfig, OidcVerifier, http_fetch
from bastion.auth.passwords import Passwords
from bastion.auth.throttle import MemoryLoginThrottle
from bastion.auth.tokens import TokenVerifier, load_admin_token
from bastion.config import Settings
from bastion.control.gateway import Gateway
from bastion.control.login import Login
from bastion.control.teams import Teams
from bastion.control.tokens import ApiTokens
from bastion.control.upstream_connect import UpstreamConnect
from bastion.control.users import Users
from bastion.core.errors import ServiceUnavailable
from bastion.core.identity import can_see
from bastion.core.netguard import parse_networks
from bastion.core.ports import ChangeFeed, Leadership, RateLimiter, Readiness, Revocations, SessionStore
from bastion.pipeline.bridge import Bridge
from bastion.pipeline.build import build_pipeline
from bastion.pipeline.context import Principal
from bastion.store.events import MemoryEventStore
from bastion.store.memory import AlwaysLeader, LocalChangeFeed, MemoryRateLimiter, MemoryRevocations
from bastion.store.sessions.keys import SessionKeys
from bastion.store.sessions.memory import MemorySessionStore
from bastion.store.sessions.redis import RedisEventStore, RedisSessionStore
from bastion.store.shared.client import RedisReadiness, make_redis
from bastion.store.shared.feed import RedisChangeFeed
from bastion.store.shared.leader import RedisLeadership
from bastion.store.shared.limits import RedisRateLimiter, RedisRevocations
from bastion.store.sql.identity import SqlIdentityRepo
from bastion.store.sql.migrate import schema_is_current, upgrade
from bastion.store.sql.oauth import SqlOAuthRepo
from bastion.store.sql.repo import SqlConfigRepo, make_engine
from bastion.store.sql.user_tokens import SqlUpstreamTokens
from bastion.tasks import TaskRunner
from bastion.upstream.guard import AddressGuard
from bastion.upstream.pool import UpstreamPool
from bastion.vault.crypto import Sealer
from bastion.vault.envelope import Envelope, KeyRing
from bastion.vault.keys import load_key_ring
from bastion.web.asgi import BastionApp, PublicEndpoints, rest_app
from bastion.web.headers import security_headers
from bastion.web.mcp_endpoint import McpFront
from bastion.web.oauth_consent import ConsentPage
from bastion.web.oauth_server import authorization_server_endpoints
from bastion.web.resource_metadata import ResourceMetadata
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
    shared: Shared


@dataclass
class Shared:
    """State every replica shares: in Redis when BASTION_REDIS_URL is set, else in this process."""

    replica: str
    feed: ChangeFeed
    revocations: Revocations
    limiter: RateLimiter
    leadership: Leadership
    checks: Sequence[Readiness]


@asynccontextmanager
async def shared_state(settings: Settings) -> AsyncIterator[Shared]:
    replica = uuid.uuid4().hex[:12]
    if settings.redis_url is None:
        yield Shared(replica, LocalChangeFeed(), MemoryRevocations(), MemoryRateLimiter(), AlwaysLeader(), ())
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
        )
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            await redis.aclose()


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


def oidc_verifier(settings: Settings, http: httpx2.AsyncClient) -> OidcVerifier | None:
    """The verifier for an external identity provider's tokens, when one is configured."""
    if settings.oidc_issuer is None:
        return None
    config = OidcConfig(
        issuer=settings.oidc_issuer,
        jwks_url=settings.oidc_jwks_url,
        audience=settings.oidc_audience,
        required_scopes=tuple(s for s in settings.oidc_required_scopes if s),
        user_claim=settings.oidc_user_claim,
        teams_claim=settings.oidc_teams_claim,
        role_claim=settings.oidc_role_claim,
    )
    return OidcVerifier(config, settings.base_url, http_fetch(http), refetch_after=settings.oidc_jwks_refetch)


def resource_metadata(settings: Settings, own: OwnAuthorizationServer | None) -> ResourceMetadata:
    """Which authorization server 401 challenges and RFC 9728 metadata point clients at."""
    if settings.oidc_issuer is not None:
        return ResourceMetadata(settings.base_url, settings.oidc_issuer, settings.oidc_required_scopes)
    if own is not None:
        return ResourceMetadata(settings.base_url, own.issuer, ("mcp",))
    return ResourceMetadata(settings.base_url, None, ())


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


def vault_key_ring(settings: Settings) -> KeyRing:
    """The vault's keys; a key file is generated only for the embedded SQLite database (replicas on
    a shared database must be given the same key, so Bastion refuses to invent one there)."""
    return load_key_ring(
        key=settings.vault_key.get_secret_value() if settings.vault_key else None,
        key_file=settings.vault_key_file,
        previous=[k.get_secret_value() for k in settings.vault_previous_keys],
        may_generate=settings.database_url.startswith("sqlite"),
    )


def owned_by(gateway: Gateway, team: str) -> list[str]:
    """What a team owns, for refusing to delete a team that still owns something."""
    snap = gateway.snapshot
    upstreams = [f"upstream {n}" for n, u in snap.upstreams.items() if u.spec.team == team]
    return upstreams + [f"virtual server {n}" for n, v in snap.servers.items() if v.spec.team == team]


def server_access(gateway: Gateway) -> Callable[[Principal, str], bool]:
    """Whether a caller may see (and so use) a virtual server."""

    def may_use(principal: Principal, name: str) -> bool:
        view = gateway.snapshot.servers.get(name)
        return view is not None and can_see(principal, view.spec)

    return may_use


def session_stores(settings: Settings, keys: SessionKeys, redis: Redis | None) -> tuple[SessionStore, EventsFor]:
    """Where 2025-11-25 session records and their resumable events live: Redis when configured
    (any replica serves any session), else this process."""
    if redis is not None:
        events = RedisEventStore(redis, settings.redis_prefix, keys, ttl=settings.session_idle_ttl)
        return RedisSessionStore(redis, settings.redis_prefix, keys, settings.session_idle_ttl), events.for_session
    return MemorySessionStore(keys, settings.session_idle_ttl), MemoryEventStore().for_session


@dataclass(frozen=True)
class OwnAuthorizationServer:
    """Bastion's own OAuth authorization server, when no external identity provider is configured."""

    issuer: str
    repo: SqlOAuthRepo
    keys: SigningKeys
    revoked: RevokedTokens
    verifier: OwnTokenVerifier


def own_authorization_server(
    settings: Settings, engine: AsyncEngine, sealer: Sealer, identity: SqlIdentityRepo
) -> OwnAuthorizationServer | None:
    if settings.oidc_issuer is not None or not settings.oauth_server:
        return None
    issuer = settings.base_url.rstrip("/")
    repo = SqlOAuthRepo(engine)
    keys = SigningKeys(repo, sealer, rotate_after=settings.oauth_key_rotation, token_ttl=settings.oauth_access_token_ttl)
    revoked = RevokedTokens()
    return OwnAuthorizationServer(
        issuer, repo, keys, revoked, OwnTokenVerifier(issuer, settings.base_url, keys, identity, revoked)
    )


def oauth_endpoints(
    own: OwnAuthorizationServer,
    settings: Settings,
    identity: SqlIdentityRepo,
    login: Login,
    may_use: Callable[[Principal, str], bool],
    http: httpx2.AsyncClient,
) -> PublicEndpoints:
    """The authorization server's endpoints and consent page."""
    config = ServerConfig(
        issuer=own.issuer,
        base_url=settings.base_url,
        code_ttl=settings.oauth_code_ttl,
        consent_ttl=settings.oauth_consent_ttl,
        access_ttl=settings.oauth_access_token_ttl,
        refresh_ttl=settings.oauth_refresh_token_ttl,
    )
    clients = Clients(
        own.repo,
        http,
        allow_private=settings.allow_private_upstreams,
        allowed_networks=parse_networks(settings.upstream_allowed_networks),
    )

    async def active(user_id: str) -> bool:
        user = await identity.get_user(user_id)
        return user is not None and user.active

    server = AuthorizationServer(config, own.repo, clients, own.keys, own.revoked, active, own.verifier.claims)
    return authorization_server_endpoints(server, ConsentPage(server, login, may_use))


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Bastion]:
    """Start everything Bastion needs; stop it all, upstream children included, on exit."""
    envelope = Envelope(vault_key_ring(settings))
    engine = make_engine(settings.database_url, settings.database_pool_size)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
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
            own = own_authorization_server(settings, engine, sealer, identity)

            def forget_user(user_id: str) -> None:
                verifier.forget_user(user_id)
                if own is not None:
                    own.verifier.forget_user(user_id)

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
            pipeline = build_pipeline(
                gateway.current,
                pool,
                timeout=settings.call_timeout,
                server_info=server_info,
                page_size=settings.page_size,
                bridge=bridge,
                limiter=shared.limiter,
                limits=settings.rate_limits,
            )
            session_keys = SessionKeys(key)
            session_store, events_for = session_stores(settings, session_keys, redis)
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
            oidc = oidc_verifier(settings, pool.http)

            async def on_revoked(token_id: str) -> None:
                verifier.forget(token_id)
                try:
                    # Kept a while past any replica's cache lifetime; after that the store answers.
                    await shared.revocations.revoke(token_id, verifier.cache_ttl + 60)
                except ServiceUnavailable:
                    pass  # Redis down: replicas that cannot read the list ask the store instead
                await shared.feed.publish_revocation(token_id)

            async def revoked_elsewhere(token_id: str) -> None:
                verifier.forget(token_id)

            tokens = ApiTokens(repo, lambda: gateway.snapshot.servers, on_revoked)
            teams = Teams(identity, users, partial(owned_by, gateway), forget_user)
            throttle = MemoryLoginThrottle(
                max_failures=settings.login_max_failures,
                max_ip_failures=settings.login_max_ip_failures,
                lockout=settings.login_lockout,
            )
            login = Login(identity, passwords, throttle, settings.session_ttl, verifier.forget)
            may_use = server_access(gateway)
            jwt_issuers: dict[str, JwtVerifier] = {}
            if oidc is not None and settings.oidc_issuer is not None:
                jwt_issuers[settings.oidc_issuer] = oidc
            if own is not None:
                jwt_issuers[own.issuer] = own.verifier
            public = oauth_endpoints(own, settings, identity, login, may_use, pool.http) if own is not None else None
            connect = UpstreamConnect(
                gateway, user_tokens, pool.http, settings.base_url, guard=guard, timeout=settings.connect_timeout
            )
            public = joined(public, callback_endpoint(connect))
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
                BearerVerifier(verifier, jwt_issuers),
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
