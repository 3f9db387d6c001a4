"""Wiring of who may call: identity providers, Bastion's own authorization server, server visibility."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.auth.oauth.clients import Clients
from bastion.auth.oauth.keys import SigningKeys
from bastion.auth.oauth.provider import AuthorizationServer, GrantRevoked, ServerConfig
from bastion.auth.oauth.revoked import RevokedTokens
from bastion.auth.oauth.user_grants import OAuthUserGrants
from bastion.auth.oauth.verify import OwnTokenVerifier
from bastion.auth.oidc import OidcConfig, OidcVerifier, outbound_fetch
from bastion.auth.oidc_signin import OidcSignIn, SignInConfig
from bastion.config import Settings
from bastion.control.external_login import ExternalLogin, Provisioning
from bastion.control.gateway import Gateway
from bastion.control.login import Login
from bastion.core.identity import can_see
from bastion.core.ports import EdgeObserver, RateLimiter, Revocations
from bastion.core.ratelimit import parse_rate
from bastion.outbound import Outbound
from bastion.pipeline.context import Principal
from bastion.store.sql.identity import SqlIdentityRepo
from bastion.store.sql.oauth import SqlOAuthRepo
from bastion.store.sql.oauth_grants import SqlUserGrants
from bastion.vault.crypto import Sealer
from bastion.web.admin.pages.oidc import CALLBACK, ProviderSignIn
from bastion.web.asgi import PublicEndpoints
from bastion.web.oauth_consent import ConsentPage
from bastion.web.oauth_server import authorization_limit, authorization_server_endpoints, registration_limit
from bastion.web.resource_metadata import ResourceMetadata


def oidc_verifier(settings: Settings, outbound: Outbound) -> OidcVerifier | None:
    """The verifier for an external identity provider's tokens, when one is configured. The hosts the
    operator named (issuer, JWKS URL) may be on a private network; anything else they lead to, a
    discovered jwks_uri elsewhere included, is held to the SSRF rules."""
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
    trusted = outbound.trusting(urlsplit(settings.oidc_issuer).hostname, urlsplit(settings.oidc_jwks_url or "").hostname)
    fetch = outbound_fetch(trusted)
    return OidcVerifier(config, settings.base_url, fetch, refetch_after=settings.oidc_jwks_refetch)


def provider_sign_in(
    settings: Settings,
    outbound: Outbound,
    identity: SqlIdentityRepo,
    login: Login,
    sealer: Sealer,
    used: Revocations,
    observers: Sequence[EdgeObserver],
    changed: Callable[[str], Awaitable[None]],
) -> ProviderSignIn | None:
    """The admin UI's "Sign in with <provider>", when an issuer and a client id are configured."""
    if settings.oidc_issuer is None or settings.oidc_client_id is None:
        return None
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    config = SignInConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=secret,
        client_auth=settings.oidc_client_auth,
        scopes=settings.oidc_ui_scopes,
        redirect_uri=settings.base_url.rstrip("/") + CALLBACK,
        post_logout_redirect_uri=settings.base_url.rstrip("/") + "/admin/login",
    )
    trusted = outbound.trusting(urlsplit(settings.oidc_issuer).hostname)
    rules = Provisioning(
        create_users=settings.oidc_ui_create_users,
        allow_admin=settings.oidc_ui_allow_admin,
        require_verified_email=settings.oidc_ui_require_verified_email,
        teams_claim=settings.oidc_teams_claim,
        role_claim=settings.oidc_role_claim,
    )
    client = OidcSignIn(config, outbound_fetch(trusted), trusted)
    people = ExternalLogin(identity, login, rules, changed)
    return ProviderSignIn(settings.oidc_provider_name, client, people, sealer, used, tuple(observers))


def resource_metadata(settings: Settings, own: OwnAuthorizationServer | None) -> ResourceMetadata:
    """Which authorization server 401 challenges and RFC 9728 metadata point clients at."""
    if settings.oidc_issuer is not None:
        return ResourceMetadata(settings.base_url, settings.oidc_issuer, settings.oidc_required_scopes)
    if own is not None:
        return ResourceMetadata(settings.base_url, own.issuer, ("mcp",))
    return ResourceMetadata(settings.base_url, None, ())


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


@dataclass(frozen=True)
class OwnAuthorizationServer:
    """Bastion's own OAuth authorization server, when no external identity provider is configured."""

    issuer: str
    repo: SqlOAuthRepo
    keys: SigningKeys
    revoked: RevokedTokens
    verifier: OwnTokenVerifier


def own_authorization_server(
    settings: Settings, engine: AsyncEngine, sealer: Sealer, identity: SqlIdentityRepo, shared: Revocations
) -> OwnAuthorizationServer | None:
    if settings.oidc_issuer is not None or not settings.oauth_server:
        return None
    issuer = settings.base_url.rstrip("/")
    repo = SqlOAuthRepo(engine)
    keys = SigningKeys(repo, sealer, rotate_after=settings.oauth_key_rotation, token_ttl=settings.oauth_access_token_ttl)
    revoked = RevokedTokens(shared)
    return OwnAuthorizationServer(
        issuer,
        repo,
        keys,
        revoked,
        OwnTokenVerifier(issuer, settings.base_url, keys, identity, revoked, shared, grant_alive=repo.grant_alive),
    )


def own_user_grants(
    own: OwnAuthorizationServer | None, settings: Settings, grant_revoked: GrantRevoked | None
) -> OAuthUserGrants | None:
    """Users' grants of Bastion's own authorization server, to list and end (None when it is off)."""
    if own is None:
        return None
    store = SqlUserGrants(own.repo.engine, settings.oauth_refresh_token_ttl)
    return OAuthUserGrants(store, own.revoked, settings.oauth_access_token_ttl, grant_revoked)


def oauth_endpoints(
    own: OwnAuthorizationServer,
    settings: Settings,
    identity: SqlIdentityRepo,
    login: Login,
    may_use: Callable[[Principal, str], bool],
    outbound: Outbound,
    limiter: RateLimiter,
    grant_revoked: GrantRevoked | None = None,
) -> PublicEndpoints:
    """The authorization server's endpoints and consent page; `grant_revoked` is told each grant revoked."""
    config = ServerConfig(
        issuer=own.issuer,
        base_url=settings.base_url,
        code_ttl=settings.oauth_code_ttl,
        consent_ttl=settings.oauth_consent_ttl,
        access_ttl=settings.oauth_access_token_ttl,
        refresh_ttl=settings.oauth_refresh_token_ttl,
        client_unused_ttl=settings.oauth_client_unused_ttl,
        client_idle_ttl=settings.oauth_client_idle_ttl,
        pending_per_client=settings.oauth_pending_per_client,
    )
    # A metadata document's URL is chosen by anyone reaching /authorize: never under the upstreams' rules.
    clients = Clients(own.repo, outbound.for_strangers(allow_private=settings.oauth_client_metadata_allow_private))

    async def active(user_id: str) -> bool:
        user = await identity.get_user(user_id)
        return user is not None and user.active

    server = AuthorizationServer(
        config, own.repo, clients, own.keys, own.revoked, active, own.verifier.claims, grant_revoked=grant_revoked
    )
    registrations = registration_limit(limiter, parse_rate(settings.oauth_registration_rate))
    authorizations = authorization_limit(limiter, parse_rate(settings.oauth_authorize_rate))
    return authorization_server_endpoints(server, ConsentPage(server, login, may_use), registrations, authorizations)
