"""One outbound HTTP exchange to a user-given URL, within the SSRF rules: every hop's address is
checked by the guard, redirects are followed by hand (never to a forbidden address, credentials
only to the same origin), the whole exchange has one deadline and the body a size cap.

REST (OpenAPI) and A2A upstreams send everything through `fetch`, so it is the one place to
switch to a common SSRF-safe client (one that also connects to the address it checked).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import anyio
import httpx2

from bastion.core.errors import BadRequest, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from bastion.core.values import small_int
from bastion.upstream.guard import AddressGuard

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
Redirects = Literal["any", "same-origin", "none"]
"""Which redirects to follow: a request without secrets any (within the rules); one with secret
headers only to its own origin; one with a secret in its URL none (a 3xx is then the answer)."""


class ResponseTooLarge(UpstreamError):
    title = "Upstream response too large"


@dataclass(frozen=True)
class Fetched:
    status: int
    reason: str
    headers: httpx2.Headers
    body: bytes
    url: str


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


async def fetch(
    http: httpx2.AsyncClient,
    guard: AddressGuard | None,
    request: httpx2.Request,
    *,
    what: str,
    deadline: float,
    max_bytes: int,
    redirects: Redirects = "any",
) -> Fetched:
    """Send `request` and read its answer; raises UpstreamTimeout, UpstreamUnavailable,
    ResponseTooLarge, or the guard's AddressRefused."""
    try:
        with anyio.fail_after(deadline):
            return await _exchange(http, guard, request, what, max_bytes, redirects)
    except TimeoutError:
        raise UpstreamTimeout(f"{what} did not answer within {deadline:g} s") from None
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(f"{what} failed: {type(exc).__name__}") from None


async def _exchange(
    http: httpx2.AsyncClient,
    guard: AddressGuard | None,
    request: httpx2.Request,
    what: str,
    max_bytes: int,
    redirects: Redirects,
) -> Fetched:
    first = str(request.url)
    for _ in range(MAX_REDIRECTS + 1):
        url = str(request.url)
        if urlsplit(url).scheme not in ("http", "https"):
            raise BadRequest(f"{what}: only http and https URLs are fetched")
        if guard is not None:
            await guard.check_url(url, what)
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            location = response.headers.get("location")
            target = urljoin(url, location) if location else None
            follow = redirects == "any" or (redirects == "same-origin" and target and _origin(target) == _origin(first))
            if response.status_code in _REDIRECTS and target is not None and follow:
                code = response.status_code
                method = "GET" if code == 303 or (code in (301, 302) and request.method == "POST") else request.method
                content = request.content if method == request.method else None
                kept = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
                request = http.build_request(method, target, headers=kept, content=content)
                continue
            body = await _read(response, max_bytes, what)
            return Fetched(response.status_code, response.reason_phrase, response.headers, body, url)
        finally:
            await response.aclose()
    raise UpstreamUnavailable(f"{what} redirected more than {MAX_REDIRECTS} times")


async def _read(response: httpx2.Response, max_bytes: int, what: str) -> bytes:
    declared = small_int(response.headers.get("content-length", ""))
    if declared is not None and declared > max_bytes:
        raise ResponseTooLarge(f"{what} answered with {declared} bytes, more than the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"{what} answered with more than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@asynccontextmanager
async def open_stream(
    http: httpx2.AsyncClient, guard: AddressGuard | None, request: httpx2.Request, *, what: str
) -> AsyncIterator[httpx2.Response]:
    """A streamed answer (Server-Sent Events) to `request`, its address checked and no redirect
    followed; the caller bounds the time (one deadline around the whole stream) and the size."""
    url = str(request.url)
    if urlsplit(url).scheme not in ("http", "https"):
        raise BadRequest(f"{what}: only http and https URLs are fetched")
    if guard is not None:
        await guard.check_url(url, what)
    try:
        response = await http.send(request, stream=True, follow_redirects=False)
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(f"{what} failed: {type(exc).__name__}") from None
    try:
        yield response
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(f"{what} failed mid-stream: {type(exc).__name__}") from None
    finally:
        await response.aclose()
