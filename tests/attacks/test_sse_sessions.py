"""Attack class: a session used by someone other than its owner (issue 9, finding 6).

An HTTP+SSE (2024-11-05) session is its owner's as a Streamable HTTP session is: a POST to
`/servers/{name}/messages/?session_id=...` from any other caller, even one who learned the id, is
answered exactly like a POST to a session that does not exist (404, no hint), whatever it carries
(a request, or the answer to the victim's elicitation). Session ids stay out of INFO logs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx2
import pytest

from tests.e2e.test_token_scopes import INITIALIZE, MCP_HEADERS, create_token
from tests.harness import TOKEN, Running, stdio_fixture

pytestmark = pytest.mark.anyio

PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
# What the owner's client would send back to an elicitation/create request of Bastion's.
ELICITATION_ANSWER = {"jsonrpc": "2.0", "id": 0, "result": {"action": "accept", "content": {"approve": True}}}


@dataclass
class SseSession:
    messages_url: str
    session_id: str
    stream: AsyncIterator[str]

    async def next_message(self) -> str:
        """The data of the next `message` event on the session's stream."""
        event = ""
        async for line in self.stream:
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "message":
                return line.partition(":")[2].strip()
        raise AssertionError("the SSE stream ended")


@asynccontextmanager
async def sse_session(gateway: Running, server: str, token: str) -> AsyncIterator[SseSession]:
    """Open an HTTP+SSE session as `token`; yields its messages URL (the `endpoint` event)."""
    headers = {"authorization": f"Bearer {token}", "accept": "text/event-stream"}
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None)) as http,
        http.stream("GET", f"{gateway.base_url}/servers/{server}/sse", headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        lines = response.aiter_lines()
        with anyio.fail_after(15):
            async for line in lines:
                if line.startswith("data:"):
                    path = line.partition(":")[2].strip()
                    break
        session_id = path.partition("session_id=")[2]
        assert session_id
        yield SseSession(gateway.base_url + path, session_id, lines)


async def post(url: str, token: str, message: dict[str, object]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, json=message, headers={**MCP_HEADERS, "authorization": f"Bearer {token}"})


async def setup(gateway: Running) -> tuple[str, str]:
    """`vs` over the fixture, and the tokens of two callers allowed to use it."""
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    victim = await create_token(gateway, servers="*")
    attacker = await create_token(gateway, servers="*")
    return victim["token"], attacker["token"]


async def test_another_caller_cannot_post_into_an_sse_session(gateway: Running) -> None:
    victim, attacker = await setup(gateway)
    async with sse_session(gateway, "vs", victim) as session:
        unknown_url = session.messages_url.replace(session.session_id, uuid.uuid4().hex)
        unknown = await post(unknown_url, attacker, PING)
        assert unknown.status_code == 404
        for intruder in (attacker, TOKEN):  # another API token; the admin is another caller too
            for message in (PING, INITIALIZE, ELICITATION_ANSWER):
                refused = await post(session.messages_url, intruder, message)
                assert (refused.status_code, refused.text) == (unknown.status_code, unknown.text), message

        # The owner's session is untouched: its own messages are served, on its own stream.
        accepted = await post(session.messages_url, victim, INITIALIZE)
        assert accepted.status_code == 202, accepted.text
        with anyio.fail_after(15):
            assert '"serverInfo"' in await session.next_message()


def _client_side(logger: str) -> bool:
    """This test's own HTTP clients log the URLs they request (the upstream here is stdio: Bastion
    itself makes no HTTP requests)."""
    return logger.split(".")[0] in ("httpx2", "httpcore")


async def test_session_ids_stay_out_of_info_logs(gateway: Running, caplog: pytest.LogCaptureFixture) -> None:
    victim, attacker = await setup(gateway)
    caplog.set_level(logging.INFO)
    ids: list[str] = []
    async with sse_session(gateway, "vs", victim) as session:
        ids.append(session.session_id)
        await post(session.messages_url, attacker, PING)
        unknown = uuid.uuid4().hex
        ids.append(unknown)
        await post(session.messages_url.replace(session.session_id, unknown), victim, PING)
    async with httpx2.AsyncClient(timeout=30) as http:
        headers = {**MCP_HEADERS, "authorization": f"Bearer {victim}"}
        opened = await http.post(gateway.mcp_url("vs"), json=INITIALIZE, headers=headers)
        ids.append(opened.headers["mcp-session-id"])
        stale = uuid.uuid4().hex
        ids.append(stale)
        await http.post(gateway.mcp_url("vs"), json=PING, headers={**headers, "mcp-session-id": stale})
    logged = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO and not _client_side(r.name)]
    assert logged, "nothing was logged at all: the check below would prove nothing"
    forms = [form for session_id in ids for form in (session_id, str(uuid.UUID(hex=session_id)))]
    for name, message in logged:
        for form in forms:
            assert form not in message, f"{name} logged a session id: {message}"
