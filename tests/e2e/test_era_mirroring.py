"""Era mirroring: a dual-era upstream that asks the old way (tests/upstreams/pushing_server.py,
behaving like the SDK's everything-server) answers each client through Bastion exactly as it
answers that client directly, over Streamable HTTP, stdio (`per_session`) and SSE upstreams."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CreateMessageResult, ElicitResult, ListRootsResult, Root, TextContent

from tests.harness import ROOT, TEST_DATABASE, Running, serve, settings_for

# The database plays no part here: the transport variants run in the SQLite pass only (CI time).
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(TEST_DATABASE == "postgres", reason="transport variants run in the SQLite pass"),
]
PUSHING = ROOT / "tests" / "upstreams" / "pushing_server.py"
TOOLS = ("test_elicitation", "test_sampling", "test_roots", "test_tool_with_logging", "test_missing_capability")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _start(transport: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, str(PUSHING), "--transport", transport], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY "), line
    return proc, int(line.split()[1])


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, int]]:
    procs = {t: _start(t) for t in ("streamable-http", "sse")}
    try:
        yield {t: port for t, (_, port) in procs.items()}
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
async def gateway(upstreams: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    db = tmp_path_factory.mktemp("mirroring") / "b.db"
    async with serve(settings_for(f"sqlite+aiosqlite:///{db}")) as running:
        bodies = {
            "http": {"transport": "streamable-http", "url": f"http://127.0.0.1:{upstreams['streamable-http']}/mcp"},
            "sse": {"transport": "sse", "url": f"http://127.0.0.1:{upstreams['sse']}/sse"},
            "stdio": {"transport": "stdio", "command": sys.executable, "args": [str(PUSHING)], "isolation": "per_session"},
        }
        for name, body in bodies.items():
            await running.register({"name": name, **body})
            await running.create_server({"name": name, "upstreams": [name], "prefix": "never"})
        yield running


async def _elicit(_ctx: Any, _params: Any) -> ElicitResult:
    return ElicitResult(action="accept", content={"response": "testuser"})


async def _sample(_ctx: Any, _params: Any) -> CreateMessageResult:
    text = TextContent(type="text", text="This is a test response from the client")
    return CreateMessageResult(role="assistant", content=text, model="test")


async def _roots(_ctx: Any) -> ListRootsResult:
    return ListRootsResult(roots=[Root(uri="file:///work/a")])  # type: ignore[arg-type]


async def _answers(url: str, mode: str, token: str | None, askable: bool) -> dict[str, Any]:
    """What each tool answers this client, and which log entries it got."""
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append(params.data)

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=None))
    callbacks: dict[str, Any] = (
        {"elicitation_callback": _elicit, "sampling_callback": _sample, "list_roots_callback": _roots} if askable else {}
    )
    answers: dict[str, Any] = {}
    async with Client(streamable_http_client(url, http_client=http), mode=mode, logging_callback=on_log, **callbacks) as c:
        for tool in TOOLS:
            args = {"message": "who?"} if tool == "test_elicitation" else {"prompt": "hi"} if tool == "test_sampling" else {}
            try:
                result = await c.call_tool(tool, args)
                text = result.content[0]
                answers[tool] = text.text if isinstance(text, TextContent) else repr(text)
                if "not supported or error" in answers[tool]:
                    # A client that declared nothing to ask is never asked, in either era; the reason's
                    # wording is the SDK's own and differs between its eras.
                    answers[tool] = answers[tool].split(":")[0]
            except MCPError as exc:
                answers[tool] = ("error", exc.code)
    answers["logs"] = logs
    return answers


@pytest.mark.parametrize("transport", ["http", "stdio", "sse"])
@pytest.mark.parametrize(("mode", "askable"), [("legacy", True), ("legacy", False), ("2026-07-28", True)])
async def test_a_client_gets_through_bastion_what_it_gets_directly(
    gateway: Running, upstreams: dict[str, int], transport: str, mode: str, askable: bool
) -> None:
    direct_url = f"http://127.0.0.1:{upstreams['streamable-http']}/mcp"
    direct = await _answers(direct_url, mode, None, askable)
    through = await _answers(gateway.mcp_url(transport), mode, "bst_test-admin-token-0123456789", askable)
    assert through == direct
    if mode == "legacy" and askable:  # the point of mirroring: the upstream could ask, and did
        assert direct["test_elicitation"].startswith("User response: action=accept")
        assert direct["test_sampling"].startswith("LLM response: This is a test response")
        assert direct["test_roots"] == "file:///work/a"


async def test_a_callers_upstream_session_outlives_an_upstream_restart(tmp_path: Any) -> None:
    """The upstream forgets the caller's session (it restarted: 404 to its session id); the caller's
    next call opens a new upstream session and is answered, asks included, as the spec asks."""
    proc, port = _start("streamable-http")
    try:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
            url = f"http://127.0.0.1:{port}/mcp"
            await gateway.register({"name": "up", "transport": "streamable-http", "url": url})
            await gateway.create_server({"name": "up", "upstreams": ["up"], "prefix": "never"})
            headers = {"Authorization": "Bearer bst_test-admin-token-0123456789"}
            http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=None))
            transport = streamable_http_client(gateway.mcp_url("up"), http_client=http)
            async with Client(transport, mode="legacy", list_roots_callback=_roots) as client:
                first = await client.call_tool("test_roots", {})
                proc.terminate()
                proc.wait(timeout=10)
                proc = subprocess.Popen(
                    [sys.executable, str(PUSHING), "--transport", "streamable-http", "--port", str(port)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert proc.stdout is not None and proc.stdout.readline().startswith("READY ")
                second = await client.call_tool("test_roots", {})
        texts = [r.content[0].text if isinstance(r.content[0], TextContent) else None for r in (first, second)]
        assert texts == ["file:///work/a", "file:///work/a"]
        assert not second.is_error
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_a_callers_own_session_resumes_a_stream_the_upstream_closed_mid_call(gateway: Running) -> None:
    """SEP-1699 on a caller's own upstream session: the upstream closes the call's stream after one
    log line; Bastion resumes it with Last-Event-ID and the caller gets both lines and the answer."""
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append(params.data)

    http = httpx2.AsyncClient(headers={"Authorization": "Bearer bst_test-admin-token-0123456789"}, timeout=30)
    transport = streamable_http_client(gateway.mcp_url("http"), http_client=http)
    async with Client(transport, mode="legacy", logging_callback=on_log, list_roots_callback=_roots) as client:
        result = await client.call_tool("test_reconnection", {})
        roots = await client.call_tool("test_roots", {})  # and the session it ran on is the caller's own
    assert isinstance(result.content[0], TextContent) and result.content[0].text == "Reconnection test completed"
    assert isinstance(roots.content[0], TextContent) and roots.content[0].text == "file:///work/a"
    assert logs == ["Before disconnect", "After reconnect"]
