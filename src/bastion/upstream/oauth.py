"""OAuth 2.0 client credentials (RFC 6749 4.4) for upstreams: Bastion's own token, cached until shortly
before it expires, fetched again then or once after the upstream answers 401.

The token and the client secret live only in memory; errors name the upstream and the token
endpoint's error code, never a secret.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

import anyio
import httpx2

from bastion.core.errors import UpstreamUnavailable
from bastion.core.models import OAuthClientCredentials
from bastion.core.surrogates import NotUnicode, strict_loads
from bastion.pipeline.tracing import vault_span

# Refresh this long before expiry (at most a tenth of the lifetime), so no request carries a token
# that expires on its way.
_SKEW_SECONDS = 30.0


_MAX_TOKEN_RESPONSE = 64 * 1024


async def call_token_endpoint(
    http: httpx2.AsyncClient,
    url: str,
    form: dict[str, str],
    *,
    auth: httpx2.BasicAuth | None,
    where: str,
    timeout: float,
) -> tuple[int, dict[str, Any] | None]:
    """POST a token request (RFC 6749 form); the HTTP status and the JSON object answered (None when
    the answer is JSON but not an object). Unreachable or non-JSON answers, and JSON holding a lone
    surrogate, are UpstreamUnavailable. `timeout` bounds the whole exchange, and the answer is read
    up to a small size only."""
    extra: dict[str, Any] = {"auth": auth} if auth is not None else {}
    body = bytearray()
    try:
        with anyio.fail_after(timeout):
            async with http.stream(
                "POST", url, data=form, headers={"accept": "application/json"}, timeout=timeout, **extra
            ) as response:
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_TOKEN_RESPONSE:
                        raise UpstreamUnavailable(f"{where} answered with more than {_MAX_TOKEN_RESPONSE} bytes")
        parsed: Any = strict_loads(body, where, "answered with") if body else {}  # a token no header can carry
    except TimeoutError:
        raise UpstreamUnavailable(f"{where} did not answer within {timeout:g} s") from None
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(f"{where} could not be reached ({type(exc).__name__})") from None
    except NotUnicode as exc:
        raise UpstreamUnavailable(str(exc)) from None
    except ValueError:
        raise UpstreamUnavailable(f"{where} answered HTTP {response.status_code} without JSON") from None
    return response.status_code, parsed if isinstance(parsed, dict) else None


def refusal(where: str, status: int, body: dict[str, Any] | None, what: str = "refused") -> str:
    """How a token endpoint's refusal is told: the status and its OAuth error code, never more."""
    code = body.get("error") if body is not None and isinstance(body.get("error"), str) else None
    return f"{where} {what}: HTTP {status}" + (f" ({code[:64]})" if code else "")


def bearer_of(body: dict[str, Any], where: str) -> tuple[str, float | None]:
    """The bearer access token of a token response and its stated lifetime in seconds (None if none,
    or none a float holds: JSON's NaN and Infinity, or an integer of hundreds of digits)."""
    token, kind, lifetime = body.get("access_token"), body.get("token_type"), body.get("expires_in")
    if not isinstance(token, str) or not token or not isinstance(kind, str) or kind.lower() != "bearer":
        raise UpstreamUnavailable(f"{where} answered without a bearer access_token")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or not 0 < lifetime <= sys.float_info.max:
        return token, None
    return token, float(lifetime)


class TokenSource(Protocol):
    """Where an upstream connection gets its bearer token: Bastion's own, or one user's."""

    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


class ClientCredentialsToken:
    """One upstream's bearer token. Safe for concurrent callers: one fetch at a time."""

    def __init__(
        self,
        upstream: str,
        config: OAuthClientCredentials,
        http: httpx2.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 15.0,
    ) -> None:
        self._upstream = upstream
        self._config = config
        self._http = http
        self._clock = clock
        self._timeout = timeout
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = anyio.Lock()
        self.fetches = 0

    async def token(self) -> str:
        """A token that is not about to expire, fetching one if needed."""
        async with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                with vault_span("client_credentials", self._upstream):
                    self._token, self._refresh_at = await self._fetch()
            return self._token

    def invalidate(self, token: str) -> None:
        """The upstream refused `token` (401): the next `token()` fetches a new one."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self._config.scope:
            form["scope"] = self._config.scope
        if self._config.audience:
            form["audience"] = self._config.audience
        auth = httpx2.BasicAuth(self._config.client_id, self._config.client_secret)
        where = f"the token endpoint of upstream {self._upstream!r}"
        status, body = await call_token_endpoint(
            self._http, self._config.token_url, form, auth=auth, where=where, timeout=self._timeout
        )
        if status != 200 or body is None:
            raise UpstreamUnavailable(refusal(where, status, body, "refused the client credentials"))
        token, lifetime = bearer_of(body, where)
        self.fetches += 1
        if lifetime is None:
            return token, float("inf")  # no stated lifetime: kept until the upstream refuses it
        return token, self._clock() + lifetime - min(_SKEW_SECONDS, lifetime / 10)


class BearerAuth(httpx2.Auth):
    """httpx auth for the SDK's upstream transports: the bearer token on every request, and one
    retry with a fresh token when the upstream answers 401."""

    requires_request_body = True  # so the one retry can send the body again

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self.requires_request_body:
            await request.aread()
        token = await self._source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self._source.invalidate(token)
            request.headers["Authorization"] = f"Bearer {await self._source.token()}"
            yield request
