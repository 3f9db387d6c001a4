"""The ASGI edge: health, authentication, Origin checks, and routing to REST or MCP.

MCP paths are routed by hand (one split, no regex) because they are the hot path; REST goes
through Starlette's router.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.core.errors import BastionError, Forbidden, MisdirectedRequest, NotFound, Unauthenticated
from bastion.core.grants import authorize
from bastion.core.hidden_text import reveal_line
from bastion.core.identity import authorize_role
from bastion.core.naming import SLUG_RE
from bastion.core.observation import EdgeEvent, reason_of
from bastion.core.ports import EdgeObserver
from bastion.pipeline.authn import ANONYMOUS, Authenticator, Verifier
from bastion.pipeline.context import Credential, Principal
from bastion.web.errors import internal_problem, problem, problem_from
from bastion.web.headers import BASE_HEADERS, Headers, with_headers
from bastion.web.hosts import ANY_HOST, PROBES, host_allowed
from bastion.web.mcp_endpoint import McpFront
from bastion.web.metrics import METRICS_PATH, MetricsEndpoint
from bastion.web.resource_metadata import PREFIX, ResourceMetadata, metadata_response, metadata_server
from bastion.web.scope import CREDENTIAL_SCOPE_KEY, PRINCIPAL_SCOPE_KEY
from bastion.web.session_manager import invalid_request, repeated_header

__all__ = ["ANONYMOUS", "Authenticator", "BastionApp", "Verifier", "admitted"]
# Reached without a token: signing in is how one gets a token (Origin is still checked).
PUBLIC_PATHS = frozenset({"/api/v1/auth/login"})
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
_ONE_COPY = (b"authorization",)
"""Headers a request may carry once: a proxy in front that checks the first copy, and a layer here
that reads the last, would act on different credentials."""


def origin_allowed(origin: str, allowed: Sequence[str]) -> bool:
    """Browsers send Origin; a page from elsewhere must not drive a local gateway (DNS rebinding)."""
    if origin in allowed:
        return True
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    return host in _LOCAL_HOSTS


_PADDING = (b" ", b"\t")


def without_padding(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Header values without surrounding whitespace, which is not part of a field value (RFC 9110
    5.5) but which uvicorn's httptools parser keeps; MCP's routing headers are compared exactly."""
    if any(v[:1] in _PADDING or v[-1:] in _PADDING for _, v in headers):
        return [(k, v.strip(b" \t")) for k, v in headers]
    return headers


def client_ip(scope: Scope) -> str | None:
    """The client's address as the ASGI server reports it. `bastion serve` lets uvicorn take it from
    X-Forwarded-For only when the peer is one of BASTION_TRUSTED_PROXIES (none by default)."""
    client = scope.get("client")
    return str(client[0]) if client else None


async def admit(scope: Scope, authenticator: Authenticator, allowed_origins: Sequence[str]) -> Principal:
    """Who is calling, after the Origin check; raises Forbidden or Unauthenticated. The credential is
    left in the scope for the pipeline, which decides again from it (without verifying twice)."""
    headers = {k: v for k, v in scope["headers"] if k in (b"authorization", b"origin")}
    origin = headers.get(b"origin")
    if origin is not None and not origin_allowed(origin.decode("latin-1"), allowed_origins):
        raise Forbidden("requests from this Origin are not allowed")
    if scope["path"] in PUBLIC_PATHS:
        return ANONYMOUS
    authorization = headers.get(b"authorization")
    credential = Credential(authorization.decode("latin-1") if authorization else None, client_ip(scope))
    scope[CREDENTIAL_SCOPE_KEY] = credential
    return await authenticator.principal(credential)


@dataclass(frozen=True)
class PublicEndpoints:
    """Paths the edge hands to `app` before authentication: the OAuth authorization server's
    endpoints, which are how a client gets a token and which protect themselves."""

    paths: frozenset[str]
    app: ASGIApp


ReadinessCheck = Callable[[], Awaitable[list[str]]]
"""What keeps this replica from serving (empty when ready): for `/readyz`."""
Challenge = Callable[[str, BastionError, bool], str | None]
"""The WWW-Authenticate value for a refused request (path, error, whether a token was presented)."""


async def admitted(
    scope: Scope,
    receive: Receive,
    send: Send,
    authenticator: Authenticator,
    allowed_origins: Sequence[str],
    ready: ReadinessCheck | None = None,
    challenge: Challenge | None = None,
    observers: Sequence[EdgeObserver] = (),
) -> bool:
    """Answer `/healthz` (alive), `/readyz` (able to serve) and refused requests here; True when the
    request goes on, its principal set. Neither probe needs a token: load balancers call them."""
    if scope["path"] in PROBES and scope["method"] not in ("GET", "HEAD"):
        not_allowed = problem(405, "Method not allowed", f"{scope['method']} is not supported on {scope['path']}", {"Allow": "GET, HEAD"})
        await not_allowed(scope, receive, send)
        return False
    if scope["path"] == "/healthz":
        await Response(json.dumps({"status": "ok"}), media_type="application/json")(scope, receive, send)
        return False
    if scope["path"] == "/readyz" and ready is not None:
        problems = await ready()
        body = json.dumps({"status": "ready" if not problems else "not ready", "problems": problems})
        await Response(body, status_code=503 if problems else 200, media_type="application/json")(scope, receive, send)
        return False
    principal: Principal | None = None
    try:
        principal = await admit(scope, authenticator, allowed_origins)
        if principal.grants is not None:
            authorize(principal.grants, scope["method"], scope["path"])
        # A user's session or token is limited by their role too (the admin token's role is admin).
        if principal.role is not None and scope["path"] not in PUBLIC_PATHS:
            authorize_role(principal.role, scope["method"], scope["path"])
    except BastionError as exc:
        if observers:
            _refused(scope, exc, observers, principal)
        response = problem_from(exc)
        presented = any(k == b"authorization" for k, _ in scope["headers"])
        value = challenge(scope["path"], exc, presented) if challenge is not None else None
        if value is None and isinstance(exc, Unauthenticated):
            value = 'Bearer realm="bastion"'  # RFC 6750: a 401 names the scheme it wants
        if value is not None:
            response.headers["www-authenticate"] = value
        await response(scope, receive, send)
        return False
    except Exception as exc:  # noqa: BLE001 - e.g. the token store unreachable: a 500, said without details
        await internal_problem(exc)(scope, receive, send)
        return False
    scope[PRINCIPAL_SCOPE_KEY] = principal
    return True


def _refused(
    scope: Scope, exc: BastionError, observers: Sequence[EdgeObserver], principal: Principal | None = None
) -> None:
    """Tell the observers (metrics, audit) of a request refused at the door; one refused after its
    credential was proven (a role or a token's grants fall short) names who asked, as a refused MCP
    call does: the user, the API token and the principal. The path is anyone's: kept as one line,
    its control and hidden characters written out."""
    caller = principal if principal is not None and principal.kind != "anonymous" else None
    event = EdgeEvent(
        kind="refused",
        started=time.time(),
        action=reveal_line(f"{scope['method']} {scope['path'][:200]}"),
        target=reveal_line(scope["path"][:200]),
        outcome="rate_limited" if exc.http_status == 429 else "denied" if exc.http_status in (401, 403) else "error",
        status=exc.http_status,
        seconds=0.0,
        reason=reason_of(exc.title),
        principal=caller.id if caller is not None else None,
        user=caller.user if caller is not None else None,
        token=caller.token if caller is not None else None,
        address=client_ip(scope),
        detail=reveal_line(f"{exc.title}: {exc.detail}"),
    )
    for observer in observers:
        observer.edge_event(event)
def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k == name), None)


_FORM_CHARSETS = frozenset({b"utf-8", b"utf8", b"us-ascii", b"ascii"})


def foreign_form_charset(scope: Scope) -> str | None:
    """The charset a multipart body names when it is not UTF-8 (None otherwise). Starlette decodes
    form fields with it, and a codec such as unicode_escape makes text that no page, database or
    upstream can hold (`\\ud800`: a 500 from the sign-in page before this). Browsers send none."""
    content_type = _header(scope, b"content-type")
    if content_type is None or not content_type.lstrip().lower().startswith(b"multipart/"):
        return None
    for parameter in content_type.split(b";")[1:]:
        key, _, value = parameter.partition(b"=")
        if key.strip().lower() == b"charset":
            charset = value.strip().strip(b'"').lower()
            return None if charset in _FORM_CHARSETS else charset.decode("latin-1")[:40]
    return None


def rest_app(routes: Sequence[BaseRoute]) -> Starlette:
    async def bastion_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BastionError)
        return problem_from(exc)

    async def unexpected(_request: Request, exc: Exception) -> Response:
        return internal_problem(exc)

    async def not_found(request: Request, _exc: Exception) -> Response:
        return problem_from(NotFound(f"no such endpoint: {request.method} {request.url.path}"))

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        allow = (getattr(exc, "headers", None) or {}).get("Allow")
        return problem(
            405, "Method not allowed", f"{request.method} is not supported on {request.url.path}",
            {"Allow": allow} if allow else None,
        )

    return Starlette(
        routes=list(routes),
        exception_handlers={BastionError: bastion_error, Exception: unexpected, 404: not_found, 405: method_not_allowed},
    )


class BastionApp:
    def __init__(
        self,
        rest: ASGIApp,
        mcp: McpFront,
        authenticator: Authenticator,
        allowed_origins: Sequence[str],
        ready: ReadinessCheck | None = None,
        headers: Headers = BASE_HEADERS,
        resource_metadata: ResourceMetadata | None = None,
        may_use: Callable[[Principal, str], bool] | None = None,
        public: PublicEndpoints | None = None,
        admin: ASGIApp | None = None,
        observers: Sequence[EdgeObserver] = (),
        metrics: MetricsEndpoint | None = None,
        hosts: frozenset[str] = frozenset({ANY_HOST}),
    ) -> None:
        self.observers = tuple(observers)
        self.metrics = metrics
        self.hosts = hosts
        self.public = public
        self.admin = admin
        self.headers = headers
        self.resource_metadata = resource_metadata
        self.ready = ready
        self.may_use = may_use
        self.rest = rest
        self.mcp = mcp
        self.authenticator = authenticator
        self.allowed_origins = tuple(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.rest(scope, receive, send)
            return
        send = with_headers(send, self.headers)
        path: str = scope["path"]
        if "\x00" in path:  # no stored name holds one, and PostgreSQL cannot compare one (a 500)
            await problem(400, "Bad request", "the URL path holds a NUL character (%00)")(scope, receive, send)
            return
        if path not in PROBES and (repeated := repeated_header(scope, _ONE_COPY)) is not None:
            # Every entry point alike; an MCP endpoint says it as a JSON-RPC error, as for its routing headers.
            if path.startswith("/servers/"):
                await invalid_request(f"Bad Request: more than one {repeated} header", scope, receive, send)
            else:
                await problem(400, "Bad request", f"more than one {repeated} header: send one")(scope, receive, send)
            return
        if path not in PROBES and not host_allowed(_header(scope, b"host"), self.hosts):
            refused = MisdirectedRequest("this gateway does not serve that host name (set BASTION_ALLOWED_HOSTS)")
            await problem_from(refused)(scope, receive, send)
            return
        if path.startswith(PREFIX):
            await self._resource_metadata(path, scope, receive, send)
            return
        if not path.startswith("/servers/") and (charset := foreign_form_charset(scope)) is not None:
            detail = f"multipart bodies are read as UTF-8; charset={charset!r} is not supported"
            await problem(415, "Unsupported media type", detail)(scope, receive, send)
            return
        if self.public is not None and path in self.public.paths:
            await self.public.app(scope, receive, send)
            return
        if self.admin is not None and (path == "/admin" or path.startswith("/admin/")):
            # The UI signs its users in with a cookie and calls the API as them, through this app.
            await self.admin(scope, receive, send)
            return
        metrics = self.metrics if path == METRICS_PATH else None
        if metrics is not None and metrics.scraper(scope):
            await metrics.serve(scope, receive, send, None)
            return
        metadata = self.resource_metadata
        challenge = metadata.challenge if metadata is not None else None
        ready, observers = self.ready, self.observers
        if not await admitted(scope, receive, send, self.authenticator, self.allowed_origins, ready, challenge, observers):
            return
        if metrics is not None:
            await metrics.serve(scope, receive, send, scope.get(PRINCIPAL_SCOPE_KEY))
        elif path.startswith("/servers/"):
            scope["headers"] = without_padding(scope["headers"])
            await self._mcp(path, scope, receive, send)
        else:
            await self.rest(scope, receive, send)

    async def _resource_metadata(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """RFC 9728 metadata: public (clients read it before they hold a token). The same document for
        every well-formed server name, existing or not, so it does not tell strangers which exist."""
        server = metadata_server(path)
        metadata = self.resource_metadata
        if metadata is None or metadata.issuer is None or server is None or not SLUG_RE.fullmatch(server):
            await problem_from(NotFound(f"no protected resource metadata at {path}"))(scope, receive, send)
            return
        await metadata_response(metadata, server)(scope, receive, send)

    async def _mcp(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        parts = path.split("/")  # ['', 'servers', name, tail, ...]
        name = parts[2] if len(parts) > 3 else ""
        tail = parts[3] if len(parts) > 3 else ""
        principal = scope.get(PRINCIPAL_SCOPE_KEY)
        invisible = self.may_use is not None and isinstance(principal, Principal) and not self.may_use(principal, name)
        if name not in self.mcp.known_servers() or invisible:
            await problem_from(NotFound(f"virtual server {name!r} does not exist"))(scope, receive, send)
            return
        if tail == "mcp" and len(parts) == 4:
            await self.mcp.handle_streamable(name, scope, receive, send)
        elif tail == "sse" and len(parts) == 4 and scope["method"] == "GET":
            await self.mcp.handle_sse(name, scope, receive, send)
        elif tail == "messages" and scope["method"] == "POST":
            await self.mcp.handle_sse_post(name, scope, receive, send)
        else:
            await problem_from(NotFound(f"no such endpoint: {scope['method']} {path}"))(scope, receive, send)
