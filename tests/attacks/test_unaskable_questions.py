"""Attack class: an upstream asks a question mid-call that Bastion cannot put to its caller. A
2025-11-25 caller's call that asks for no progress is served without a stream of its own (its
questions go on the session's GET stream); with no GET stream open, the upstream's
`elicitation/create` was stored for a stream nobody reads, the upstream got no answer, and the call
hung until its deadline. Now the upstream is answered with an error at once, and the call goes on
(here the tool fails with that error); a caller with a GET stream open is still asked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.test_bridge import asking_url  # noqa: F401 - the asking upstream, a fixture
from tests.harness import Running, open_raw_session, serve, session_headers, settings_for

pytestmark = pytest.mark.anyio
CAPABILITIES = {"elicitation": {}, "sampling": {}}


@pytest.fixture
async def gateway(asking_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    # A deadline far past the hang guard: a question left unanswered shows as a hang, not a timeout error.
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", call_timeout=600)) as running:
        await running.register({"name": "ask", "transport": "sse", "url": asking_url})
        await running.create_server({"name": "a", "upstreams": ["ask"]})
        yield running


def _messages(response: httpx2.Response) -> list[Any]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    return [response.json()]


async def _call(http: httpx2.AsyncClient, url: str, session_id: str, tool: str, arguments: dict[str, Any]) -> Any:
    """A tools/call with no progress token: the answer to it."""
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    answered = await http.post(url, headers=session_headers(session_id), json=call)
    assert answered.status_code == 200, answered.text
    return [m for m in _messages(answered) if m.get("id") == 2][-1]


@pytest.mark.parametrize(("tool", "arguments", "method"), [
    ("ask__ask_name", {}, "elicitation/create"),
    ("ask__ask_llm", {"prompt": "6 x 7?"}, "sampling/createMessage"),
])
async def test_a_question_the_caller_cannot_be_asked_is_answered_with_an_error_at_once(
    gateway: Running, tool: str, arguments: dict[str, Any], method: str
) -> None:
    url = gateway.mcp_url("a")
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None)) as http:
        session_id = await open_raw_session(http, url, capabilities=CAPABILITIES)
        with anyio.fail_after(120):  # a hang guard: before, the call waited for its 600 s deadline
            answer = await _call(http, url, session_id, tool, arguments)
    text = json.dumps(answer)
    assert f"Bastion cannot put this {method} to the caller: it has no stream open to be asked on" in text, text


async def test_a_caller_with_a_stream_open_is_still_asked(gateway: Running) -> None:
    url = gateway.mcp_url("a")
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None)) as http:
        session_id = await open_raw_session(http, url, capabilities=CAPABILITIES)
        asked: list[str] = []

        async def listen(opened: anyio.Event) -> None:
            async with http.stream("GET", url, headers=session_headers(session_id)) as stream:
                assert stream.status_code == 200
                opened.set()
                async for line in stream.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line[5:])
                    if message.get("method") == "elicitation/create":
                        asked.append(message["method"])
                        reply = {"jsonrpc": "2.0", "id": message["id"], "result": {"action": "accept", "content": {"name": "Ada"}}}
                        answered = await http.post(url, headers=session_headers(session_id), json=reply)
                        assert answered.status_code == 202, answered.text

        with anyio.fail_after(120):  # a hang guard
            async with anyio.create_task_group() as tg:
                opened = anyio.Event()
                tg.start_soon(listen, opened)
                await opened.wait()
                answer = await _call(http, url, session_id, "ask__ask_name", {})
                tg.cancel_scope.cancel()
    assert answer["result"]["content"][0]["text"] == "Hello, Ada!", answer
    assert asked == ["elicitation/create"]
