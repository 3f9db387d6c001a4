"""The conformance suite through Bastion: the test upstream behind a virtual server with
`prefix: never`, the suite pointed at the virtual server's URL (with a token, via the auth proxy:
the suite cannot send headers). Compare with test_conformance_direct to tell a gateway fault from
the suite's or the upstream's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.conformance.auth_proxy import AuthProxy
from tests.conformance.suite import SUITES, conformance_upstream, register_totals, run_suite
from tests.harness import TOKEN, serve, serve_asgi, settings_for

pytestmark = [pytest.mark.node, pytest.mark.anyio, pytest.mark.database_free]

NOTHING_TO_CHECK = frozenset(
    {
        # Bastion answers a plain 2025-11-25 call with one application/json body (the spec lets a
        # server choose JSON or SSE per POST), so this scenario's tool call opens no SSE stream and
        # the suite records only INFO checks: nothing failed, nothing it could verify. Calls that
        # stream (progress, logs, input requests) do go out as SSE with priming events and replay.
        "server-sse-polling",
    }
)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    register_totals(request)
    db = tmp_path_factory.mktemp("conformance") / "bastion.db"
    with conformance_upstream() as upstream_url:
        async with serve(settings_for(f"sqlite+aiosqlite:///{db}")) as gateway:
            # Unpinned: the suite's dynamic tools and list_changed scenarios expect new tools to show at once.
            body = {"name": "conformance", "transport": "streamable-http", "url": upstream_url, "pin": "off"}
            await gateway.register(body)
            await gateway.create_server({"name": "conformance", "upstreams": ["conformance"], "prefix": "never"})
            async with serve_asgi(AuthProxy(gateway.base_url, TOKEN)) as base:
                yield f"{base}/servers/conformance/mcp"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("suite", SUITES)
async def test_conformance_through_bastion(gateway_url: str, suite: str, tmp_path: Path) -> None:
    # The suite is a child process that blocks while it runs; Bastion serves it from this loop.
    await anyio.to_thread.run_sync(
        lambda: run_suite(suite, gateway_url, tmp_path, label="through Bastion", nothing_to_check=NOTHING_TO_CHECK)
    )
