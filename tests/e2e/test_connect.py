"""`bastion connect SERVER`: a stdio MCP server, run as a real process, forwarding to a running Bastion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from mcp import Client, MCPError
from mcp.client.session import MessageHandlerFnT
from mcp.client.stdio import StdioServerParameters, get_default_environment
from mcp.shared.subscriptions import ToolsListChanged

from bastion.core.errors import UpstreamUnavailable
from tests.e2e.test_list_changed import ToolListChanges, prime
from tests.harness import TOKEN, Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]


async def with_fixture_server(gateway: Running) -> None:
    await gateway.register({**stdio_fixture("fx"), "pin": "off"})  # a tool it adds must reach the client
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})


def connect_params(gateway: Running, server: str = "vs", token: str = TOKEN) -> StdioServerParameters:
    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": token}
    if "PYTHONPATH" in os.environ:  # the SDK passes only a few variables on: run the code under test
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return StdioServerParameters(command=sys.executable, args=["-m", "bastion", "connect", server], env=env)


@asynccontextmanager
async def connected(gateway: Running, mode: str, message_handler: MessageHandlerFnT | None = None) -> AsyncIterator[Client]:
    async with Client(connect_params(gateway), mode=mode, message_handler=message_handler) as client:
        yield client


async def run_connect(gateway: Running, server: str, token: str) -> tuple[int, str]:
    params = connect_params(gateway, server, token)
    env = {**get_default_environment(), **(params.env or {})}
    done = await anyio.run_process([params.command, *params.args], env=env, stdin=subprocess.DEVNULL, check=False)
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize("mode", MODES)
async def test_connect_lists_and_calls_tools(gateway: Running, mode: str) -> None:
    await with_fixture_server(gateway)
    async with connected(gateway, mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        echoed = await client.call_tool("fx__echo", {"text": "hi ✓"})
        added = await client.call_tool("fx__add", {"a": 2, "b": 3})
    assert {"fx__echo", "fx__add"} <= names
    assert [c.text for c in echoed.content] == ["hi ✓"]
    assert added.structured_content == {"result": 5}
    assert added.is_error is not True


@pytest.mark.parametrize("mode", MODES)
async def test_connect_passes_gateway_errors_on_as_jsonrpc_errors(gateway: Running, mode: str) -> None:
    await with_fixture_server(gateway)
    async with connected(gateway, mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("nope", {})
        failed = await client.call_tool("fx__fail", {"message": "broken"})
    assert raised.value.code == -32602
    assert raised.value.error.data == {"type": "UnknownTool", "name": "nope"}
    assert failed.is_error is True


@pytest.mark.parametrize("mode", MODES)
async def test_connect_forwards_prompts_resources_and_completion(gateway: Running, mode: str) -> None:
    await with_fixture_server(gateway)
    async with connected(gateway, mode) as client:
        prompt = await client.get_prompt("fx__greet", {"name": "Ada"})
        resource = await client.read_resource("fixture://items/7")
        templates = await client.list_resource_templates()
    assert prompt.messages[0].content.text == "Hello, Ada!"
    assert [c.text for c in resource.contents] == ["item 7"]
    assert [t.uri_template for t in templates.resource_templates] == ["fixture://items/{item_id}"]


@pytest.mark.parametrize("mode", MODES)
async def test_connect_relays_progress(gateway: Running, mode: str) -> None:
    await with_fixture_server(gateway)
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, _message: str | None) -> None:
        seen.append((progress, total))

    async with connected(gateway, mode) as client:
        result = await client.call_tool("fx__progress", {"steps": 3}, progress_callback=on_progress)
    assert [c.text for c in result.content] == ["ok"]
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_connect_passes_list_changed_to_a_legacy_client(gateway: Running) -> None:
    await with_fixture_server(gateway)
    changes = ToolListChanges()
    async with connected(gateway, "legacy", message_handler=changes.handler) as client:
        await prime(gateway, changes, "fx__echo")
        seen = changes.count
        await client.call_tool("fx__add_tool", {"name": "late"})
        with anyio.fail_after(15):
            while "fx__late" not in {t.name for t in (await client.list_tools()).tools}:
                await changes.wait_for(seen + 1)
                seen = changes.count


async def test_connect_passes_list_changed_to_a_2026_client_on_listen(gateway: Running) -> None:
    await with_fixture_server(gateway)
    events: list[Any] = []
    async with connected(gateway, "2026-07-28") as client, client.listen(tools_list_changed=True) as subscription:
        # Bastion tells `connect` only once its GET stream is up; nothing signals that, so retry.
        with anyio.fail_after(15):
            attempt = 0
            while not events:
                attempt += 1
                response = await gateway.api.patch("/api/v1/tools/fx__echo", json={"description": f"changed {attempt}"})
                assert response.status_code == 200, response.text
                with anyio.move_on_after(0.25):
                    events.append(await subscription.__anext__())
    assert isinstance(events[0], ToolsListChanged)


async def test_connect_answers_with_an_error_while_bastion_is_gone(tmp_path: Path) -> None:
    stop, stopped = anyio.Event(), anyio.Event()

    async def run_gateway(*, task_status: anyio.abc.TaskStatus[Running]) -> None:
        try:
            async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as gateway:
                await with_fixture_server(gateway)
                task_status.started(gateway)
                await stop.wait()
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        gateway = await tg.start(run_gateway)
        async with connected(gateway, "legacy") as client:
            before = await client.call_tool("fx__echo", {"text": "up"})
            stop.set()
            await stopped.wait()
            with pytest.raises(MCPError) as raised:
                await client.call_tool("fx__echo", {"text": "down"})
    assert [c.text for c in before.content] == ["up"]
    assert raised.value.code == UpstreamUnavailable.jsonrpc_code


async def test_connect_with_a_wrong_token_exits_with_a_message(gateway: Running) -> None:
    await with_fixture_server(gateway)
    code, stderr = await run_connect(gateway, "vs", "bst_wrong")
    assert code == 1
    assert "refused the token" in stderr
    assert "Traceback" not in stderr


async def test_connect_to_an_unknown_server_exits_with_a_message(gateway: Running) -> None:
    code, stderr = await run_connect(gateway, "nope", TOKEN)
    assert code == 1
    assert "no virtual server 'nope'" in stderr
    assert "Traceback" not in stderr


async def test_connect_answers_a_line_that_is_not_jsonrpc_with_an_error(gateway: Running) -> None:
    await with_fixture_server(gateway)
    params = connect_params(gateway)
    env = {**get_default_environment(), **(params.env or {})}
    lines = [
        "not json",
        '{"jsonrpc": "2.0", "id": 5, "method": 3}',
        "",  # a blank line is skipped, not answered
        '{"jsonrpc": "2.0", "id": 1, "method": "ping"}',
    ]
    async with await anyio.open_process([params.command, *params.args], env=env) as process:
        assert process.stdin is not None and process.stdout is not None
        await process.stdin.send("".join(f"{line}\n" for line in lines).encode())
        answers: list[dict[str, Any]] = []
        buffer = b""
        with anyio.fail_after(10):
            while len(answers) < 3:
                buffer += await process.stdout.receive()
                *complete, buffer = buffer.split(b"\n")
                answers += [json.loads(line) for line in complete if line]
        await process.stdin.aclose()
        await process.wait()
    assert [(a.get("id"), a.get("error", {}).get("code")) for a in answers] == [(None, -32700), (None, -32600), (1, None)]
    assert answers[2]["result"] == {}
