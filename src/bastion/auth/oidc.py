"""Trust an external OpenID Connect provider: verify the JWT access tokens it issues for Bastion's
virtual servers (signature from its JWKS, issuer, audience, expiry, scope) and map their claims to
a principal (user, teams, role) that per-tool policy can match.

Audience: a token is for one virtual server when its `aud` is that server's MCP URL (RFC 8707
resource indicators, as MCP clients request them), or for every server when it is the configured
gateway-wide audience. A token for none of them is not Bastion's: 401. Only asymmetric algorithms
are accepted, so `alg: none` and HMAC-with-the-public-key forgeries fail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import jwt

from bastion.core.errors import BastionError, FetchFailed, Forbidden, Unauthenticated
from bastion.core.grants import ALL_SERVERS, AllServers, Grants
from bastion.core.netguard import AddressRefused
from bastion.core.surrogates import strict_loads
from bastion.core.values import ROLES, Role
from bastion.outbound import Outbound
from bastion.pipeline.context import Principal

log = logging.getLogger("bastion.auth")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_KEYS_MAX_AGE = 3600.0
MAX_DOCUMENT = 1024 * 1024
LEEWAY = 30


class IdentityProviderUnavailable(BastionError):
    http_status = 503
    jsonrpc_code = -32011
    title = "Identity provider unavailable"


class InsufficientScope(Forbidden):
    title = "Insufficient scope"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    jwks_url: str | None
    audience: str | None
    required_scopes: tuple[str, ...]
    user_claim: str
    teams_claim: str
    role_claim: str


Fetch = Callable[[str], Awaitable[dict[str, Any]]]


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("bst_")


class OidcVerifier:
    """Verifies one provider's access tokens for the virtual servers under `server_url_prefix`."""

    def __init__(self, config: OidcConfig, server_url_prefix: str, fetch: Fetch, *, refetch_after: float = 30.0) -> None:
        self._config = config
        self._refetch_after = refetch_after  # an unknown kid refetches at most this often: rotation, not abuse
        self._prefix = server_url_prefix.rstrip("/") + "/servers/"
        self._fetch = fetch
        self._keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        """By key id: the key, and the algorithm its JWK declares (if any)."""
        self._fetched_at = -_KEYS_MAX_AGE
        self._lock = anyio.Lock()

    async def verify(self, token: str) -> Principal:
        return await self._verify(token, expiry=True)

    async def verify_ignoring_expiry(self, token: str) -> Principal:
        """As `verify`, but a token past its expiry passes (signature, issuer, audience and scope are
        still checked). Only for re-checking what an expired token's grant holds open (see
        `OwnTokenVerifier.verify_grant`) and for finding the grant an expired token revoked at
        /revoke names (`OwnTokenVerifier.claims`); never for admitting a request."""
        return await self._verify(token, expiry=False)

    async def _verify(self, token: str, *, expiry: bool) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("invalid token: not a well-formed JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(f"invalid token: algorithm {str(algorithm)[:20]!r} is not accepted")
        key, declared = await self._key(kid if isinstance(kid, str) else None)
        if declared is not None and declared != algorithm:
            raise Unauthenticated("invalid token: its algorithm does not match the signing key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=self._config.issuer,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_aud": False, "verify_exp": expiry},
                leeway=LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("invalid token: expired") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("invalid token: issued by another issuer") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {_reason(exc)}") from None
        except (TypeError, ValueError):  # the header's algorithm does not fit the key (a JWK without "alg")
            raise Unauthenticated("invalid token: its algorithm does not match the signing key") from None
        servers = self._servers(claims.get("aud"))
        self._check_scopes(claims)
        return self._principal(claims, servers)

    def _servers(self, audience: object) -> frozenset[str] | AllServers:
        values = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        names = set()
        for value in values:
            if not isinstance(value, str):
                continue
            if self._config.audience is not None and value == self._config.audience:
                return ALL_SERVERS
            if value.startswith(self._prefix) and value.endswith("/mcp"):
                name = value[len(self._prefix) : -len("/mcp")]
                if name and "/" not in name:
                    names.add(name)
        if not names:
            raise Unauthenticated("invalid token: its audience is not this gateway or one of its virtual servers")
        return frozenset(names)

    def _check_scopes(self, claims: dict[str, Any]) -> None:
        granted = claims.get("scope", claims.get("scp", ""))
        scopes = set(granted.split()) if isinstance(granted, str) else set(granted) if isinstance(granted, list) else set()
        missing = [s for s in self._config.required_scopes if s not in scopes]
        if missing:
            raise InsufficientScope(f"the token lacks the scope {' '.join(missing)!r}", scope=" ".join(missing))

    def _principal(self, claims: dict[str, Any], servers: frozenset[str] | AllServers) -> Principal:
        config = self._config
        user = claims.get(config.user_claim)
        user = user if isinstance(user, str) and user else str(claims["sub"])
        teams = claims.get(config.teams_claim)
        team_set = frozenset(t for t in teams if isinstance(t, str)) if isinstance(teams, list) else frozenset()
        role = claims.get(config.role_claim)
        grants = Grants(servers, frozenset({"mcp"}))
        return Principal(
            id=f"oidc:{claims['sub']}",
            kind="user",
            grants=grants,
            user=user,
            teams=team_set,
            role=_role(role),
        )

    async def _key(self, kid: str | None) -> tuple[jwt.PyJWK, str | None]:
        now = time.monotonic()
        key = self._pick(kid)
        stale = now - self._fetched_at > _KEYS_MAX_AGE
        if key is None or stale:
            async with self._lock:
                if (self._pick(kid) is None and time.monotonic() - self._fetched_at >= self._refetch_after) or stale:
                    await self._refresh()
            key = self._pick(kid)
        if key is None:
            raise Unauthenticated("invalid token: signed with a key the identity provider does not publish")
        return key

    def _pick(self, kid: str | None) -> tuple[jwt.PyJWK, str | None] | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self) -> None:
        try:
            url = self._config.jwks_url or await self._discover_jwks_url()
            document = await self._fetch(url)
            keys = parse_keys(document)
        except (OSError, FetchFailed, AddressRefused, ValueError, jwt.PyJWTError) as exc:
            log.warning("could not fetch the identity provider's keys: %s", type(exc).__name__)
            if not self._keys:
                raise IdentityProviderUnavailable("the identity provider's signing keys could not be fetched") from None
            return
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _discover_jwks_url(self) -> str:
        base = self._config.issuer.rstrip("/")
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            try:
                document = await self._fetch(base + path)
            except (OSError, FetchFailed, AddressRefused, ValueError):
                continue
            if isinstance(document.get("jwks_uri"), str):
                return str(document["jwks_uri"])
        raise ValueError("the issuer publishes no jwks_uri")


def parse_keys(document: dict[str, Any]) -> dict[str, tuple[jwt.PyJWK, str | None]]:
    """The signing keys of a JWKS document; keys Bastion cannot use (other types, encryption) are skipped."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("a JWKS document needs a 'keys' list")
    keys = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        declared = entry.get("alg")
        keys[str(entry.get("kid") or f"#{index}")] = (key, declared if isinstance(declared, str) else None)
    return keys


def _role(value: object) -> Role | None:
    for role in ROLES:
        if value == role:
            return role
    return None


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing the {exc.claim!r} claim"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not valid yet"
    return "it could not be verified"


def outbound_fetch(outbound: Outbound) -> Fetch:
    """GET a JSON document for discovery and JWKS: through the outbound rules (the operator's own
    issuer and JWKS hosts are trusted even on a private network), 10 s in total, 1 MiB at most,
    and no redirects (a redirect is a failed fetch). A document that is not a JSON object, or holds
    a lone surrogate, is a ValueError."""

    async def fetch(url: str) -> dict[str, Any]:
        fetched = await outbound.fetch(url, untrusted=False, max_bytes=MAX_DOCUMENT, timeout=10.0)
        if fetched.status != 200:
            raise ValueError(f"fetching {url[:200]} answered HTTP {fetched.status}")
        document = strict_loads(fetched.body, "the identity provider's document")  # an endpoint no URL can carry
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        return document

    return fetch
