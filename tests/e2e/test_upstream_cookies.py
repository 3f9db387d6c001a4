"""Cookies an upstream sets never cross callers. Over Streamable HTTP Bastion's upstream clients
are shared by every caller, so they keep no cookies at all; over the old SSE transport a cookie
lives in its one upstream session (a sticky load balancer may need it), so per-user sessions keep
their cookies apart."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.test_token_scopes import create_token
from tests.harness import HttpUpstream, Running, http_fixture

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def streamable(request: pytest.FixtureRequest) -> Iterator[HttpUpstream]:
    with http_fixture("streamable-http", "--set-cookie") as running:
        yield running


@pytest.fixture(scope="module")
def sse(request: pytest.FixtureRequest) -> Iterator[HttpUpstream]:
    with http_fixture("sse", "--set-cookie") as running:
        yield running


async def cookie_seen(gateway: Running, token: str | None = None) -> str | None:
    kwargs = {"token": token} if token else {}
    async with gateway.client("vs", **kwargs) as client:
        result = await client.call_tool("up__whoami", {})
    return json.loads(result.content[0].text).get("cookie")


@pytest.mark.parametrize("isolation", ["shared", "per_user"])
async def test_streamable_http_upstreams_never_get_a_cookie_back(
    gateway: Running, streamable: HttpUpstream, isolation: str
) -> None:
    # By name: HTTP clients keep no cookies for bare IP addresses anyway, so 127.0.0.1 would prove nothing.
    url = streamable.url.replace("127.0.0.1", "localhost")
    await gateway.register({**streamable.body("up"), "url": url, "isolation": isolation})
    await gateway.create_server({"name": "vs", "upstreams": ["up"]})
    other = (await create_token(gateway, servers=["vs"]))["token"]
    for token in (None, other, None):
        assert await cookie_seen(gateway, token) is None


async def test_per_user_sse_sessions_keep_their_cookies_apart(gateway: Running, sse: HttpUpstream) -> None:
    await gateway.register({**sse.body("up"), "isolation": "per_user"})
    await gateway.create_server({"name": "vs", "upstreams": ["up"]})
    other = (await create_token(gateway, servers=["vs"]))["token"]
    mine = {await cookie_seen(gateway) for _ in range(2)}
    theirs = {await cookie_seen(gateway, other) for _ in range(2)}
    assert None not in mine | theirs  # the session cookie does come back within a session
    assert mine.isdisjoint(theirs)
