"""Outbound: the one way Bastion makes HTTP requests to other hosts.

- `client()` / `client_factory()`: httpx2 clients for MCP upstreams and token endpoints; they
  connect only to addresses the SSRF rules allow (checked per connection, on the address connected
  to), follow no redirects of their own, ignore proxy environment variables and .netrc, and can cap
  what an upstream sends (`capped=True`).
- `aiohttp_session()`: the same rules for the lean 2026-07-28 path.
- `fetch()`: one bounded GET/POST of a document (client metadata, OIDC discovery and keys, and
  later registry sources or OpenAPI specs): a total deadline, a size cap, no redirects. With
  `untrusted=True` (a URL an unauthenticated client chose) it runs in a small pool of its own that
  refuses work when full, and every failure reads the same, so it is no port scanner.
- `check()`: resolve a URL's host now and refuse it as a connection would (for clear 403s at
  registration).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import httpx2

from bastion.core.errors import FetchFailed
from bastion.core.netguard import AddressRefused
from bastion.outbound.aiohttp_guard import guarded_session
from bastion.outbound.httpx_guard import Caps, GuardedTransport
from bastion.outbound.rules import Resolve, Rules, system_resolve

log = logging.getLogger("bastion.outbound")

MiB = 1024 * 1024
UNTRUSTED_FAILURE = "the document could not be fetched"
_UPSTREAM_LIMITS = httpx2.Limits(max_connections=200, max_keepalive_connections=50)
_TIMEOUT = httpx2.Timeout(30.0, read=None)


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)


def _host(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("only absolute http:// and https:// URLs are fetched")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


class Outbound:
    def __init__(
        self,
        rules: Rules,
        *,
        resolve: Resolve = system_resolve,
        max_message_bytes: int = 16 * MiB,
        max_result_bytes: int = 64 * MiB,
        untrusted_timeout: float = 5.0,
        untrusted_concurrency: int = 16,
    ) -> None:
        self.rules = rules
        self._resolve = resolve
        self._caps = Caps(max_message_bytes, max(max_result_bytes, max_message_bytes))
        self._untrusted_timeout = untrusted_timeout
        self._untrusted_concurrency = untrusted_concurrency
        # Its own pool and a limiter that refuses rather than queues: slow documents chosen by
        # strangers can hold at most these connections, never the ones upstream traffic uses.
        self._untrusted_slots = anyio.CapacityLimiter(untrusted_concurrency)
        limits = httpx2.Limits(max_connections=untrusted_concurrency, max_keepalive_connections=0)
        self._untrusted = self._make(limits=limits, capped=False)
        self._trusted = self._make(limits=httpx2.Limits(max_connections=20, max_keepalive_connections=5), capped=False)
        self._children: list[Outbound] = []

    @property
    def max_message_bytes(self) -> int:
        return self._caps.max_message

    @property
    def max_result_bytes(self) -> int:
        return self._caps.max_result

    def trusting(self, *hosts: str | None) -> Outbound:
        """Another Outbound whose rules also trust these operator-configured host names (closed with this one)."""
        child = Outbound(
            self.rules.trusting(*hosts),
            resolve=self._resolve,
            max_message_bytes=self._caps.max_message,
            max_result_bytes=self._caps.max_result,
            untrusted_timeout=self._untrusted_timeout,
        )
        self._children.append(child)
        return child

    def for_strangers(self, *, allow_private: bool = False) -> Outbound:
        """Another Outbound for URLs anonymous clients choose (closed with this one): public addresses
        only, whatever the admin allows for the upstreams it registers (private networks, chosen
        ranges, trusted hosts); `allow_private` is for tests and local development."""
        child = Outbound(
            Rules(allow_private=allow_private),
            resolve=self._resolve,
            max_message_bytes=self._caps.max_message,
            max_result_bytes=self._caps.max_result,
            untrusted_timeout=self._untrusted_timeout,
            untrusted_concurrency=self._untrusted_concurrency,
        )
        self._children.append(child)
        return child

    def _make(self, *, limits: httpx2.Limits, capped: bool, **kwargs: Any) -> httpx2.AsyncClient:
        transport = GuardedTransport(self.rules, self._resolve, limits, self._caps if capped else None)
        return httpx2.AsyncClient(transport=transport, trust_env=False, follow_redirects=False, **kwargs)

    def client(
        self,
        *,
        headers: dict[str, str] | None = None,
        auth: httpx2.Auth | None = None,
        timeout: httpx2.Timeout = _TIMEOUT,
        limits: httpx2.Limits = _UPSTREAM_LIMITS,
        capped: bool = True,
        **kwargs: Any,
    ) -> httpx2.AsyncClient:
        """A guarded httpx2 client (the caller closes it)."""
        return self._make(limits=limits, capped=capped, headers=headers, auth=auth, timeout=timeout, **kwargs)

    def client_factory(self, **kwargs: Any) -> Any:
        """For the SDK's sse_client(httpx_client_factory=...): guarded, capped clients."""

        def factory(
            headers: dict[str, str] | None = None,
            timeout: httpx2.Timeout | None = None,
            auth: httpx2.Auth | None = None,
        ) -> httpx2.AsyncClient:
            return self.client(headers=headers, auth=auth, timeout=timeout or _TIMEOUT, **kwargs)

        return factory

    def aiohttp_session(self, *, connect_timeout: float, limit: int = 200, limit_per_host: int = 100) -> aiohttp.ClientSession:
        return guarded_session(
            self.rules, self._resolve, limit=limit, limit_per_host=limit_per_host, keepalive=60, connect_timeout=connect_timeout
        )

    async def check(self, url: str) -> None:
        """Raise AddressRefused if a connection to `url`'s host would be refused now."""
        host, port = _host(url)
        await self.rules.addresses(host, port, self._resolve)

    async def fetch(
        self,
        url: str,
        *,
        untrusted: bool,
        max_bytes: int = 1 * MiB,
        timeout: float | None = None,
        method: str = "GET",
        **request: Any,
    ) -> Fetched:
        """One request, read whole within `timeout` seconds in total and `max_bytes`; redirects are
        answered as they are (3xx), never followed. FetchFailed (or AddressRefused when trusted)."""
        if not untrusted:
            return await self._fetch(self._trusted, url, max_bytes, timeout or 10.0, method, request)
        try:
            self._untrusted_slots.acquire_nowait()
        except anyio.WouldBlock:
            log.debug("untrusted fetch of %s refused: the pool is busy", url[:200])
            raise FetchFailed(UNTRUSTED_FAILURE) from None
        try:
            return await self._fetch(self._untrusted, url, max_bytes, timeout or self._untrusted_timeout, method, request)
        except (AddressRefused, FetchFailed) as exc:
            log.debug("untrusted fetch of %s failed: %s", url[:200], exc)
            raise FetchFailed(UNTRUSTED_FAILURE) from None
        finally:
            self._untrusted_slots.release()

    async def _fetch(
        self, client: httpx2.AsyncClient, url: str, max_bytes: int, timeout: float, method: str, request: dict[str, Any]
    ) -> Fetched:
        host, _port = _host(url)
        await self.check(url)  # refused addresses are said as such; the connection checks again
        body = bytearray()
        try:
            with anyio.fail_after(timeout):
                async with client.stream(method, url, timeout=timeout, **request) as response:
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise FetchFailed(f"the answer from {host} is larger than {max_bytes} bytes")
        except TimeoutError:
            raise FetchFailed(f"{host} did not answer within {timeout:g} s") from None
        except httpx2.HTTPError as exc:
            log.debug("fetch of %s failed: %r", url[:200], exc)
            raise FetchFailed(f"{host} could not be reached ({type(exc).__name__})") from None
        return Fetched(response.status_code, dict(response.headers), bytes(body))

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._untrusted.aclose()
            await self._trusted.aclose()
            for child in self._children:
                await child.aclose()
