"""The authorization server's HTTP endpoints: RFC 8414 metadata, JWKS, the SDK's /authorize, /token
and /register (RFC 7591) handlers and Bastion's own /revoke (oauth_revoke.py) over Bastion's
provider, plus the consent page.

They are reached without a bearer token (they are how a client gets one), so the edge routes them
here before authentication; each protects itself (client authentication, PKCE, CSRF)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError
from mcp.server.auth.settings import ClientRegistrationOptions
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.auth.oauth.client_auth import HashedSecretAuthenticator, basic_credentials
from bastion.auth.oauth.clients import SCOPES
from bastion.auth.oauth.provider import CONSENT_PATH, REQUESTED_RESOURCE, AuthorizationServer
from bastion.core.errors import BastionError, RateLimited
from bastion.core.oauth import MAX_REDIRECT_URI
from bastion.core.ports import RateLimiter
from bastion.core.ratelimit import Rate
from bastion.web.asgi import PublicEndpoints, client_ip
from bastion.web.errors import internal_problem, problem_from
from bastion.web.oauth_consent import ConsentPage
from bastion.web.oauth_revoke import revocation_endpoint

METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/oauth/jwks"
_AUTH_METHODS = ["client_secret_post", "client_secret_basic", "none"]
MAX_REGISTRATION_BYTES = 16 * 1024
"""A registration is a few hundred bytes of metadata; anything much larger is abuse (413)."""


@dataclass(frozen=True)
class AddressLimit:
    """Requests to one endpoint per client address, counted where every replica sees them (the rate
    limiter: Redis when configured, else this process). The address is the one the ASGI server
    reports: X-Forwarded-For counts only from BASTION_TRUSTED_PROXIES (`client_ip`)."""

    limiter: RateLimiter
    rate: Rate
    name: str
    """The counter's name, e.g. "oauth-register"."""
    what: str
    """What is counted, for the 429: "client registrations"."""
    methods: frozenset[str] = frozenset({"POST"})

    def guard(self, app: ASGIApp) -> ASGIApp:
        return _Limited(self, app)


def address_bucket(address: str | None) -> str:
    """What one client address counts as for a per-address limit: an IPv6 address's /64 (one host
    commonly holds a whole /64, so counting its addresses one by one would be no limit), an IPv4
    address (or an IPv4-mapped IPv6 one) as itself."""
    if not address:
        return "?"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass(frozen=True)
class _Limited:
    """An ASGI app (not a function, which a Route would take for a request handler)."""

    limit: AddressLimit
    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit
        if scope["type"] == "http" and scope["method"] in limit.methods:
            key = f"{limit.name}:{address_bucket(client_ip(scope))}"
            try:
                refused = await limit.limiter.hit([(key, limit.rate.count, limit.rate.seconds)])
            except BastionError as exc:
                await problem_from(exc)(scope, receive, send)
                return
            if refused is not None:
                limited_now = RateLimited(
                    f"too many {limit.what} from this address (at most {limit.rate}); try again later",
                    retry_after=refused[1],
                )
                await problem_from(limited_now)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def registration_limit(limiter: RateLimiter, rate: Rate) -> AddressLimit:
    return AddressLimit(limiter, rate, "oauth-register", "client registrations")


def authorization_limit(limiter: RateLimiter, rate: Rate) -> AddressLimit:
    """Each /authorize keeps a pending request in the database until the user answers or it expires."""
    return AddressLimit(limiter, rate, "oauth-authorize", "authorization requests", frozenset({"GET", "POST"}))


AUTHORIZE_BOUNDS = {
    "client_id": 2048,
    "redirect_uri": MAX_REDIRECT_URI,
    "resource": 2048,
    "scope": 1024,
    "state": 1024,
    "code_challenge": 128,
    "code_challenge_method": 16,
    "response_type": 16,
}
"""The longest each /authorize parameter may be, in characters. The request is kept in the database
until answered, so nothing a stranger sends is stored unbounded. Clients send a `state` of a few
dozen characters (the MCP SDK 43); a PKCE challenge is 43 to 128 (RFC 7636 4.2); a redirect URI and
a resource are URLs; a client_id is a registered id or a metadata document's URL."""


def metadata_document(issuer: str) -> dict[str, Any]:
    """RFC 8414 metadata; written out here because the SDK's model lacks `jwks_uri`."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "registration_endpoint": f"{issuer}/register",
        "revocation_endpoint": f"{issuer}/revoke",
        "jwks_uri": f"{issuer}{JWKS_PATH}",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": _AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": _AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": True,
    }


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    # Browser-based MCP clients call these cross-origin; they carry no cookies, only client credentials.
    return CORSMiddleware(app, allow_origins=["*"], allow_methods=methods, allow_headers=["mcp-protocol-version"])


def _limited(app: ASGIApp, max_bytes: int = DEFAULT_MAX_REQUEST_BODY_SIZE) -> ASGIApp:
    return RequestBodyLimitMiddleware(app, max_bytes)


def _json(produce: Callable[[], Awaitable[dict[str, Any]]], max_age: int) -> ASGIApp:
    async def endpoint(_request: Request) -> Response:
        return JSONResponse(await produce(), headers={"cache-control": f"public, max-age={max_age}"})

    return _cors(request_response(endpoint), ["GET", "OPTIONS"])


def _form_read(handle: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A POST whose form Starlette refuses (past 1,000 fields or 1 MB a field, multipart without a
    boundary) is the client's invalid_request. The SDK's /authorize took the refusal for an
    unexpected error (a stack trace, `server_error`); /token and /revoke answered in plain text."""

    async def handled(request: Request) -> Response:
        if request.method == "POST":
            try:
                await request.form()  # kept on the request: the handler reads it from there
            except HTTPException as exc:
                body = {"error": "invalid_request", "error_description": exc.detail}
                return JSONResponse(body, status_code=400, headers={"cache-control": "no-store"})
        return await handle(request)

    return handled


def _basic_client_id(handle: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """RFC 6749 2.3.1: a client authenticating with HTTP Basic need not repeat its client_id in the
    form. The SDK's handlers read it from the form only ("Missing client_id"), so the Basic one is
    put there; a form client_id that differs from the Basic one is refused (invalid_client)."""

    async def handled(request: Request) -> Response:
        if request.method != "POST":
            return await handle(request)
        try:
            credentials = basic_credentials(request.headers.get("authorization", ""))
        except AuthenticationError as exc:
            return _client_refused(exc.message)
        form = await request.form()
        posted = form.get("client_id")
        if credentials is None or posted == credentials[0]:
            return await handle(request)
        if posted:
            return _client_refused("the client_id in the form differs from the one in HTTP Basic authentication")
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)] + [("client_id", credentials[0])]
        return await handle(_with_form(request, urlencode(fields).encode()))

    return handled


def _with_form(request: Request, body: bytes) -> Request:
    """The same request with this urlencoded form as its body."""
    kept = [(k, v) for k, v in request.scope["headers"] if k not in (b"content-type", b"content-length")]
    headers = [*kept, (b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", str(len(body)).encode())]
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await request.receive()  # a disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({**request.scope, "headers": headers}, receive)


def _client_refused(description: str) -> Response:
    body = {"error": "invalid_client", "error_description": description}
    return JSONResponse(body, status_code=401, headers={"cache-control": "no-store", "pragma": "no-cache"})


def _bounded(handle: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """An /authorize parameter past its bound (`AUTHORIZE_BOUNDS`) is refused with invalid_request,
    answered here and not sent to the client's redirect URI: the request is not looked at further."""

    async def handled(request: Request) -> Response:
        params = await request.form() if request.method == "POST" else request.query_params
        for name, bound in AUTHORIZE_BOUNDS.items():
            if any(isinstance(value, str) and len(value) > bound for value in params.getlist(name)):
                body = {"error": "invalid_request", "error_description": f"{name} is longer than {bound} characters"}
                return JSONResponse(body, status_code=400, headers={"cache-control": "no-store"})
        return await handle(request)

    return handled


def _naming_resource(handle: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """The token request's RFC 8707 `resource`, told to the provider's exchange (the SDK's handler
    reads it and drops it), which refuses one the grant was not authorized for: invalid_target."""

    async def handled(request: Request) -> Response:
        resource = (await request.form()).get("resource") if request.method == "POST" else None
        token = REQUESTED_RESOURCE.set(resource if isinstance(resource, str) and resource else None)
        try:
            return await handle(request)
        finally:
            REQUESTED_RESOURCE.reset(token)

    return handled


def _naming_issuer(handle: Callable[[Request], Awaitable[Response]], issuer: str) -> Callable[[Request], Awaitable[Response]]:
    """RFC 9207: every authorization response names the issuer, errors included. The SDK's handler
    sends its own error redirects (bad PKCE method, unknown scope or resource) without `iss`."""

    async def handled(request: Request) -> Response:
        response = await handle(request)
        location = response.headers.get("location")
        if response.status_code in (302, 303) and location and "iss" not in dict(parse_qsl(urlsplit(location).query)):
            joiner = "&" if urlsplit(location).query else "?"
            response.headers["location"] = f"{location}{joiner}{urlencode({'iss': issuer})}"
        return response

    return handled


def authorization_server_endpoints(
    server: AuthorizationServer, consent: ConsentPage, registrations: AddressLimit, authorizations: AddressLimit
) -> PublicEndpoints:
    issuer = server.config.issuer
    document = metadata_document(issuer)

    async def metadata() -> dict[str, Any]:
        return document

    authenticator = HashedSecretAuthenticator(server, server.clients)
    registration = ClientRegistrationOptions(enabled=True, valid_scopes=list(SCOPES), default_scopes=list(SCOPES))
    token = TokenHandler(server, authenticator)
    routes = [
        Route(METADATA_PATH, _json(metadata, 300), methods=["GET", "OPTIONS"]),
        # Short cache: a rotated key must reach verifiers elsewhere soon.
        Route(JWKS_PATH, _json(server.keys.jwks, 60), methods=["GET", "OPTIONS"]),
        Route(
            "/authorize",
            authorizations.guard(
                _limited(request_response(_form_read(_bounded(_naming_issuer(AuthorizationHandler(server).handle, issuer)))))
            ),
            methods=["GET", "POST"],
        ),
        Route(
            "/token",
            _cors(
                _limited(request_response(_form_read(_basic_client_id(_naming_resource(token.handle))))), ["POST", "OPTIONS"]
            ),
            methods=["POST", "OPTIONS"],
        ),
        Route(
            "/register",
            _cors(
                registrations.guard(
                    _limited(request_response(RegistrationHandler(server, registration).handle), MAX_REGISTRATION_BYTES)
                ),
                ["POST", "OPTIONS"],
            ),
            methods=["POST", "OPTIONS"],
        ),
        Route(
            "/revoke",
            _cors(
                _limited(request_response(_form_read(_basic_client_id(revocation_endpoint(server, authenticator))))),
                ["POST", "OPTIONS"],
            ),
            methods=["POST", "OPTIONS"],
        ),
        Route(CONSENT_PATH, _limited(request_response(consent.handle)), methods=["GET", "POST"]),
    ]

    async def unexpected(_request: Request, exc: Exception) -> Response:
        return internal_problem(exc)

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BastionError)
        return problem_from(exc)  # e.g. 503 when a revocation cannot be shared with the other replicas

    app = Starlette(routes=routes, exception_handlers={BastionError: refused, Exception: unexpected})
    return PublicEndpoints(frozenset(route.path for route in routes), app)
