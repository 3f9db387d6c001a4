"""The e2e matrix: every client era and downstream transport against every upstream transport.

One Bastion per upstream transport (stdio, streamable HTTP, HTTP+SSE) serves the fixture upstream
as `fx` on two virtual servers: `all` (prefixed names) and `plain` (prefix "never"). Each test
connects one client: legacy over Streamable HTTP, 2026-07-28 over Streamable HTTP, or legacy over
the old HTTP+SSE transport.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import ListRootsResult, PromptReference

from tests.harness import TOKEN, HttpUpstream, Running, http_fixture, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

UPSTREAMS = ["stdio", "streamable-http", "sse"]
# (client era, downstream transport)
DOWNSTREAMS = [("legacy", "streamable-http"), ("2026-07-28", "streamable-http"), ("legacy", "sse")]
per_client = pytest.mark.parametrize("downstream", DOWNSTREAMS, ids=["legacy-http", "modern-http", "legacy-sse"])
TOOLS = ["echo", "add", "fail", "slow", "cancelled_count", "slow_running", "progress", "crash", "pid", "add_tool", "whoami", "log"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def http_upstream() -> Iterator[HttpUpstream]:
    with http_fixture("streamable-http") as upstream:
        yield upstream


@pytest.fixture(scope="module")
def sse_upstream() -> Iterator[HttpUpstream]:
    with http_fixture("sse") as upstream:
        yield upstream


@pytest.fixture(scope="module", params=UPSTREAMS)
def upstream_transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def upstream_body(upstream_transport: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if upstream_transport == "stdio":
        return stdio_fixture("fx")
    name = "http_upstream" if upstream_transport == "streamable-http" else "sse_upstream"
    upstream: HttpUpstream = request.getfixturevalue(name)
    return upstream.body("fx")


@pytest.fixture(scope="module")
async def matrix(upstream_body: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """A Bastion with the fixture upstream `fx` behind the virtual servers `all` and `plain`."""
    db = tmp_path_factory.mktemp("matrix") / "bastion.db"
    async with serve(settings_for(f"sqlite+aiosqlite:///{db}")) as gateway:
        await gateway.register(upstream_body)
        await gateway.create_server({"name": "all", "upstreams": ["fx"], "prefix": "always"})
        await gateway.create_server({"name": "plain", "upstreams": ["fx"], "prefix": "never"})
        yield gateway


def connect(gateway: Running, downstream: tuple[str, str], server: str = "all") -> Any:
    mode, transport = downstream
    return gateway.client(server, mode=mode, transport=transport)


def text_of(result: Any) -> str:
    assert result.content, result
    return result.content[0].text


@per_client
async def test_tools_are_listed_with_the_upstream_prefix(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == {f"fx__{t}" for t in TOOLS}


@per_client
async def test_echo_round_trips_text(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream) as client:
        result = await client.call_tool("fx__echo", {"text": "héllo ✓"})
    assert result.is_error is not True
    assert text_of(result) == "héllo ✓"


@per_client
async def test_add_keeps_structured_content(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream) as client:
        result = await client.call_tool("fx__add", {"a": 2, "b": 3})
    assert result.structured_content == {"result": 5}
    assert text_of(result) == "5"


@per_client
async def test_tool_failure_is_an_error_result_not_a_jsonrpc_error(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream) as client:
        result = await client.call_tool("fx__fail", {"message": "it broke"})
    assert result.is_error is True
    assert text_of(result) == "it broke"


@per_client
async def test_progress_notifications_reach_the_client(matrix: Running, downstream: tuple[str, str]) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with connect(matrix, downstream) as client:
        with anyio.fail_after(15):
            result = await client.call_tool("fx__progress", {"steps": 3}, progress_callback=on_progress)
    assert text_of(result) == "ok"
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_progress_reaches_a_client_whose_calls_run_on_its_own_upstream_session(matrix: Running) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with matrix.client("all", mode="legacy", list_roots_callback=_no_roots) as client:
        with anyio.fail_after(15):
            result = await client.call_tool("fx__progress", {"steps": 3}, progress_callback=on_progress)
    assert text_of(result) == "ok"
    assert seen == [(1, 3), (2, 3), (3, 3)]


@per_client
async def test_prompt_get_returns_the_greeting(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        result = await client.get_prompt("fx__greet", {"name": "Ada"})
    assert prompts == {"fx__greet"}
    assert [m.content.text for m in result.messages] == ["Hello, Ada!"]


@per_client
async def test_static_and_templated_resources_are_read(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream) as client:
        static = await client.read_resource("fixture://static")
        item = await client.read_resource("fixture://items/42")
    assert [(str(c.uri), c.text) for c in static.contents] == [("fixture://static", "static content")]
    assert [(str(c.uri), c.text) for c in item.contents] == [("fixture://items/42", "item 42")]


@per_client
async def test_prompt_argument_completion(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream) as client:
        result = await client.complete(
            PromptReference(type="ref/prompt", name="fx__greet"), {"name": "name", "value": "al"}
        )
    assert result.completion.values == ["alice", "albert"]


@per_client
async def test_unknown_tool_is_an_invalid_params_error_naming_it(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("fx__nope", {})
    assert caught.value.code == -32602
    assert "fx__nope" in caught.value.message


@per_client
async def test_disabled_tool_is_refused_naming_it(matrix: Running, downstream: tuple[str, str]) -> None:
    response = await matrix.api.patch("/api/v1/tools/fx__pid", json={"enabled": False})
    assert response.status_code == 200, response.text
    try:
        async with connect(matrix, downstream) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "fx__pid" not in names and "fx__echo" in names
            with pytest.raises(MCPError) as caught:
                await client.call_tool("fx__pid", {})
    finally:
        response = await matrix.api.patch("/api/v1/tools/fx__pid", json={"enabled": True})
        assert response.status_code == 200, response.text
    assert caught.value.code == -32602
    assert "disabled" in caught.value.message
    assert "fx__pid" in caught.value.message


@per_client
async def test_server_identifies_as_bastion(matrix: Running, downstream: tuple[str, str]) -> None:
    mode, _ = downstream
    async with connect(matrix, downstream) as client:
        info = client.server_info
    if mode == "legacy":
        assert info is not None and info.name == "bastion"
    else:
        # The 2026-07-28 serverInfo stamp is optional; if present it must not be the upstream's.
        assert info is None or info.name == "bastion"


@per_client
async def test_prefix_never_exposes_original_names(matrix: Running, downstream: tuple[str, str]) -> None:
    async with connect(matrix, downstream, server="plain") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        echo = await client.call_tool("echo", {"text": "plain"})
        add = await client.call_tool("add", {"a": 2, "b": 3})
        greeting = await client.get_prompt("greet", {"name": "Ada"})
    assert names == set(TOOLS)
    assert text_of(echo) == "plain"
    assert add.structured_content == {"result": 5}
    assert greeting.messages[0].content.text == "Hello, Ada!"


@per_client
async def test_client_authorization_never_reaches_the_upstream(
    matrix: Running, downstream: tuple[str, str], upstream_transport: str
) -> None:
    async with connect(matrix, downstream) as client:
        result = await client.call_tool("fx__whoami", {})
    headers = {k.lower(): v for k, v in json.loads(text_of(result)).items()}
    if upstream_transport == "stdio":
        assert headers == {}
    else:
        assert "host" in headers  # the upstream really saw an HTTP request
        assert "authorization" not in headers
        assert not any(TOKEN in v for v in headers.values())


async def _cancelled_count(client: Client) -> int:
    result = await client.call_tool("fx__cancelled_count", {})
    assert result.structured_content is not None
    return int(result.structured_content["result"])


async def _slow_running(client: Client) -> int:
    result = await client.call_tool("fx__slow_running", {})
    assert result.structured_content is not None
    return int(result.structured_content["result"])


async def _no_roots(context: Any) -> ListRootsResult:
    return ListRootsResult(roots=[])


# A client that can be asked (roots) makes its calls on an upstream session of its own (era mirroring).
@pytest.mark.parametrize("askable", [False, True], ids=["shared-session", "own-session"])
async def test_cancelling_a_call_cancels_it_upstream(matrix: Running, askable: bool) -> None:
    async with matrix.client("all", mode="legacy", list_roots_callback=_no_roots if askable else None) as client:
        finished: list[object] = []
        before = await _cancelled_count(client)

        async def call_slow() -> None:
            finished.append(await client.call_tool("fx__slow", {"seconds": 30}))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_slow)
                # No event says the upstream started slow: ask it until it has.
                while await _slow_running(client) == 0:
                    await anyio.sleep(0.02)
                assert finished == []
                tg.cancel_scope.cancel()
            assert finished == []
            # No event says the upstream handled the cancellation: poll its counter.
            while await _cancelled_count(client) == before:
                await anyio.sleep(0.05)
        assert await _cancelled_count(client) == before + 1
        # The session is still usable after the cancellation.
        assert text_of(await client.call_tool("fx__echo", {"text": "after"})) == "after"


async def test_a_modern_client_that_drops_its_request_cancels_the_call_upstream(matrix: Running) -> None:
    # A 2026-07-28 client cancels by closing its HTTP request: nothing else tells the gateway. The
    # call is raw HTTP so the request can be dropped while the upstream is still working on it.
    headers = {
        "Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream", "Content-Type": "application/json",
        "Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "fx__slow",
    }
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__slow", "arguments": {"seconds": 30}, "_meta": meta}}
    async with matrix.client("all", mode="legacy") as client:
        before = await _cancelled_count(client)
        with anyio.fail_after(15):
            async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:

                async def post() -> None:
                    await http.post(matrix.mcp_url("all"), headers=headers, json=call)

                tg.start_soon(post)
                while await _slow_running(client) == 0:
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()  # the client goes: its connection closes mid-call
            while await _cancelled_count(client) == before:
                await anyio.sleep(0.05)
        assert await _cancelled_count(client) == before + 1
        assert await _slow_running(client) == 0
