"""Signing people in with an external OpenID Connect provider: the authorization-code flow with
PKCE (S256), `state` and `nonce`, as a confidential client (client_secret_basic or _post) or a
public one (PKCE only, when no secret is configured).

This module talks to the provider (discovery, token endpoint, JWKS) through the outbound rules and
verifies the ID token: a signature by a key the provider publishes, asymmetric algorithms only,
issuer, audience = our client id, `azp` when present (required with several audiences), expiry
and issue time with a little leeway, and the nonce of this flow. Errors never carry the client
secret or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode

import jwt

from bastion.auth.oidc import ALGORITHMS, LEEWAY, MAX_DOCUMENT, Fetch, IdentityProviderUnavailable, parse_keys
from bastion.core.errors import BadRequest, FetchFailed, Unauthenticated
from bastion.core.netguard import AddressRefused
from bastion.core.surrogates import NotUnicode, strict_loads
from bastion.outbound import Outbound

log = logging.getLogger("bastion.auth")

_DISCOVERY_MAX_AGE = 3600.0
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class SignInConfig:
    issuer: str
    client_id: str
    client_secret: str | None = field(repr=False)
    client_auth: str
    scopes: str
    redirect_uri: str
    post_logout_redirect_uri: str | None = None
    """Where the provider sends the browser back after signing out there (RP-initiated logout)."""


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    jwks: str
    end_session: str | None = None
    """The provider's `end_session_endpoint`, when it offers RP-initiated logout."""


@dataclass(frozen=True)
class Flow:
    """One sign-in in progress: what the browser carries (sealed) between start and callback."""

    state: str
    nonce: str
    verifier: str

    @staticmethod
    def new() -> Flow:
        return Flow(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def safe_error_code(value: object) -> str:
    """An OAuth error code from the provider, fit to show (anything else reads 'unknown_error')."""
    return value if isinstance(value, str) and _ERROR_CODE.match(value) else "unknown_error"


class OidcSignIn:
    """The client side of one provider's authorization-code flow."""

    def __init__(self, config: SignInConfig, fetch: Fetch, outbound: Outbound) -> None:
        self.config = config
        self._fetch = fetch
        self._outbound = outbound
        self._endpoints: Endpoints | None = None
        self._fetched_at = 0.0

    async def endpoints(self) -> Endpoints:
        """The provider's endpoints from its discovery document (cached for an hour)."""
        if self._endpoints is None or time.monotonic() - self._fetched_at > _DISCOVERY_MAX_AGE:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                document = await self._fetch(url)
            except ValueError as exc:  # reached, but what it answered is no discovery document
                log.warning("the identity provider's discovery document is unusable: %s", exc)
                raise IdentityProviderUnavailable("the identity provider did not answer with a discovery document Bastion can use") from None
            except (OSError, FetchFailed, AddressRefused) as exc:
                log.warning("could not fetch the identity provider's discovery document: %s", type(exc).__name__)
                raise IdentityProviderUnavailable("the identity provider could not be reached; try again later") from None
            self._endpoints = _endpoints_of(document, self.config.issuer)
            self._fetched_at = time.monotonic()
        return self._endpoints

    async def authorization_url(self, flow: Flow) -> str:
        endpoints = await self.endpoints()
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": self.config.scopes,
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": flow.challenge,
            "code_challenge_method": "S256",
        }
        sep = "&" if "?" in endpoints.authorization else "?"
        return endpoints.authorization + sep + urlencode(query)

    async def redeem(self, code: str, flow: Flow) -> tuple[dict[str, Any], str]:
        """Exchange the code for tokens; the verified ID token's claims, and the token itself (the
        hint for signing out at the provider later)."""
        endpoints = await self.endpoints()
        id_token = await self._exchange(endpoints.token, code, flow.verifier)
        return await self._verify(endpoints.jwks, id_token, flow.nonce), id_token

    async def logout_url(self, id_token_hint: str | None) -> str | None:
        """Where to send a browser that signs out of Bastion so it signs out at the provider too
        (OpenID Connect RP-Initiated Logout 1.0), or None when the provider offers no such endpoint
        or cannot be reached (signing out of Bastion never waits on the provider)."""
        try:
            endpoints = await self.endpoints()
        except IdentityProviderUnavailable:
            return None
        if endpoints.end_session is None:
            return None
        query = {"client_id": self.config.client_id}
        if id_token_hint:
            query["id_token_hint"] = id_token_hint
        if self.config.post_logout_redirect_uri:
            query["post_logout_redirect_uri"] = self.config.post_logout_redirect_uri
        sep = "&" if "?" in endpoints.end_session else "?"
        return endpoints.end_session + sep + urlencode(query)

    async def _exchange(self, url: str, code: str, verifier: str) -> str:
        config = self.config
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": config.redirect_uri, "code_verifier": verifier}
        headers = {"accept": "application/json"}
        if config.client_secret is None:
            form["client_id"] = config.client_id
        elif config.client_auth == "client_secret_post":
            form |= {"client_id": config.client_id, "client_secret": config.client_secret}
        else:
            headers["authorization"] = _basic(config.client_id, config.client_secret)
        try:
            fetched = await self._outbound.fetch(
                url, untrusted=False, max_bytes=MAX_DOCUMENT, timeout=10.0, method="POST", data=form, headers=headers
            )
        except (OSError, FetchFailed, AddressRefused) as exc:
            log.warning("the identity provider's token endpoint could not be reached: %s", type(exc).__name__)
            raise IdentityProviderUnavailable("the identity provider could not be reached; try again later") from None
        unicode_error: NotUnicode | None = None  # told after a refusal's error code: an ID token no JWT library can read
        try:
            reply = strict_loads(fetched.body, "the identity provider's token endpoint", "answered with")
        except NotUnicode as exc:
            reply, unicode_error = exc.value, exc
        except ValueError:
            reply = None
        if fetched.status != 200 or not isinstance(reply, dict):
            code_said = safe_error_code(reply.get("error") if isinstance(reply, dict) else None)
            log.info("the identity provider's token endpoint refused the code: HTTP %d %s", fetched.status, code_said)
            raise BadRequest(f"the identity provider refused to complete the sign-in ({code_said})")
        if unicode_error is not None:
            raise BadRequest(str(unicode_error))
        id_token = reply.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise BadRequest("the identity provider answered without an ID token (is the 'openid' scope requested?)")
        return id_token

    async def _verify(self, jwks_url: str, token: str, nonce: str) -> dict[str, Any]:
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("the ID token is not a well-formed JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(f"the ID token's algorithm {str(algorithm)[:20]!r} is not accepted")
        key, declared = await self._key(jwks_url, kid if isinstance(kid, str) else None)
        if declared is not None and declared != algorithm:
            raise Unauthenticated("the ID token's algorithm does not match its signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=config.issuer,
                audience=config.client_id,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the ID token has expired") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the ID token was issued by another issuer") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the ID token was issued for another client") from None
        except (jwt.PyJWTError, TypeError, ValueError) as exc:  # TypeError: the algorithm does not fit the key
            raise Unauthenticated(f"the ID token could not be verified ({type(exc).__name__})") from None
        audience = claims["aud"]
        azp = claims.get("azp")
        if (azp is not None or (isinstance(audience, list) and len(audience) > 1)) and azp != config.client_id:
            raise Unauthenticated("the ID token was issued for another client")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise Unauthenticated("the ID token does not belong to this sign-in (nonce)")
        return claims

    async def _key(self, jwks_url: str, kid: str | None) -> tuple[jwt.PyJWK, str | None]:
        # Fetched for every sign-in: sign-ins are rare, and a rotated key is never missed.
        try:
            keys = parse_keys(await self._fetch(jwks_url))
        except (OSError, FetchFailed, AddressRefused, ValueError, jwt.PyJWTError) as exc:
            log.warning("could not fetch the identity provider's keys: %s", type(exc).__name__)
            raise IdentityProviderUnavailable("the identity provider's signing keys could not be fetched") from None
        found = keys.get(kid) if kid is not None else next(iter(keys.values())) if len(keys) == 1 else None
        if found is None:
            raise Unauthenticated("the ID token is signed with a key the identity provider does not publish")
        return found


def _endpoints_of(document: dict[str, Any], issuer: str) -> Endpoints:
    if document.get("issuer") != issuer:
        # OpenID Connect Discovery 4.3: the document must name the issuer it was fetched for.
        raise IdentityProviderUnavailable("the identity provider's discovery document names another issuer")
    values = [document.get(k) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
    if not all(isinstance(v, str) and v.startswith(("https://", "http://")) for v in values):
        raise IdentityProviderUnavailable("the identity provider's discovery document lacks its endpoints")
    end_session = document.get("end_session_endpoint")
    if not (isinstance(end_session, str) and end_session.startswith(("https://", "http://"))):
        end_session = None
    authorization, token, jwks = (str(v) for v in values)
    return Endpoints(authorization, token, jwks, end_session)


def _basic(client_id: str, secret: str) -> str:
    # RFC 6749 2.3.1: both parts form-encoded before base64.
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()
