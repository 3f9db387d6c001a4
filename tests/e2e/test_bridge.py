"""Era bridge both ways, for upstreams that ask the client for input mid-call.

- a 2026-07-28 client in front of a 2025-11-25 upstream that sends live requests: Bastion holds the
  call and returns `input_required` with a sealed `requestState`; the retry resumes it;
- a 2025-11-25 client in front of the same upstream: the live requests pass through, live.
(2025-11-25 clients in front of 2026-07-28 upstreams that answer `input_required` are covered by the
conformance run through Bastion: tools-call-elicitation, tools-call-sampling.)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError
from mcp.types import CreateMessageResult, ElicitResult, InputRequiredResult, ListRootsResult, Root, TextContent

from tests.harness import ROOT, Running, serve, settings_for

pytestmark = pytest.mark.anyio
ASKING = ROOT / "tests" / "upstreams" / "asking_server.py"


@pytest.fixture(scope="module")
def asking_url() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(ASKING), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY "), line
    try:
        yield f"http://127.0.0.1:{int(line.split()[1])}/sse"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def gateway(asking_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as running:
        await running.register({"name": "ask", "transport": "sse", "url": asking_url})
        await running.create_server({"name": "a", "upstreams": ["ask"]})
        await running.create_server({"name": "b", "upstreams": ["ask"]})
        yield running


async def elicit(_ctx: Any, _params: Any) -> ElicitResult:
    return ElicitResult(action="accept", content={"name": "Ada"})


async def sample(_ctx: Any, params: Any) -> CreateMessageResult:
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text="forty-two"), model="test")


async def roots(_ctx: Any) -> ListRootsResult:
    return ListRootsResult(roots=[Root(uri="file:///work", name="work")])


CALLBACKS: dict[str, Any] = {"elicitation_callback": elicit, "sampling_callback": sample, "list_roots_callback": roots}


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_questions_asked_mid_call_reach_the_client_and_back(gateway: Running, mode: str) -> None:
    async with gateway.client("a", mode=mode, **CALLBACKS) as client:
        assert (await client.call_tool("ask__ask_name", {})).content[0].text == "Hello, Ada!"
        assert (await client.call_tool("ask__ask_llm", {"prompt": "6 x 7?"})).content[0].text == "model said: forty-two"
        assert (await client.call_tool("ask__count_roots", {})).content[0].text == "1 roots: file:///work"


async def first_round(gateway: Running, server: str) -> InputRequiredResult:
    async with gateway.client(server, mode="2026-07-28", **CALLBACKS) as client:
        result = await client.session.call_tool("ask__ask_name", {}, allow_input_required=True)
    assert isinstance(result, InputRequiredResult)
    assert result.request_state is not None and result.input_requests
    return result


async def test_a_tampered_request_state_is_refused(gateway: Running) -> None:
    held = await first_round(gateway, "a")
    state = held.request_state
    assert state is not None
    tampered = state[:-2] + ("AA" if state[-2:] != "AA" else "BB")
    async with gateway.client("a", mode="2026-07-28") as client:
        with pytest.raises(MCPError) as refused:
            await client.session.call_tool(
                "ask__ask_name",
                {},
                input_responses={"bastion": ElicitResult(action="accept", content={"name": "Eve"})},
                request_state=tampered,
                allow_input_required=True,
            )
    assert refused.value.code == -32602


async def test_a_request_state_from_another_virtual_server_is_refused(gateway: Running) -> None:
    held = await first_round(gateway, "a")
    async with gateway.client("b", mode="2026-07-28") as client:
        with pytest.raises(MCPError) as refused:
            await client.session.call_tool(
                "ask__ask_name",
                {},
                input_responses={"bastion": ElicitResult(action="accept", content={"name": "Eve"})},
                request_state=held.request_state,
                allow_input_required=True,
            )
    assert refused.value.code == -32602


async def test_the_retry_resumes_the_held_call(gateway: Running) -> None:
    held = await first_round(gateway, "a")
    (request,) = held.input_requests.values()  # type: ignore[union-attr]
    assert request.method == "elicitation/create"
    async with gateway.client("a", mode="2026-07-28") as client:
        done = await client.session.call_tool(
            "ask__ask_name",
            {},
            input_responses={key: ElicitResult(action="accept", content={"name": "Grace"}) for key in held.input_requests or {}},
            request_state=held.request_state,
            allow_input_required=True,
        )
        assert not isinstance(done, InputRequiredResult)
        assert done.content[0].text == "Hello, Grace!"
        # The state was for one resumption: using it again is refused.
        with pytest.raises(MCPError) as again:
            await client.session.call_tool(
                "ask__ask_name",
                {},
                input_responses={"bastion": ElicitResult(action="accept", content={"name": "Grace"})},
                request_state=held.request_state,
                allow_input_required=True,
            )
        assert again.value.code == -32602
