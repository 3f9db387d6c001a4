"""Two callers on one upstream at the same time, each with their own roots, capabilities and log
level: each is asked its own questions concurrently and sees only its own answers and logs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError
from mcp.types import ElicitResult, ListRootsResult, LoggingMessageNotificationParams, Root

from tests.e2e.test_bridge import asking_url  # noqa: F401 - the legacy-only upstream, as a fixture
from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway(asking_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as running:
        await running.register({"name": "ask", "transport": "sse", "url": asking_url})
        await running.create_server({"name": "vs", "upstreams": ["ask"], "visibility": "public"})
        yield running


class Caller:
    def __init__(self, name: str, roots: list[str], both_asked: anyio.Event, asked: list[anyio.Event]) -> None:
        self.name, self.roots = name, roots
        self.logs: list[LoggingMessageNotificationParams] = []
        self._both, self._asked = both_asked, asked
        self.questions: list[str] = []

    async def _wait_for_the_other(self, event: anyio.Event) -> None:
        event.set()
        if all(e.is_set() for e in self._asked):
            self._both.set()
        await self._both.wait()  # answer only once both callers are being asked at the same time

    async def list_roots(self, _ctx: Any) -> ListRootsResult:
        self.questions.append("roots")
        await self._wait_for_the_other(self._asked[0 if self.name == "alice" else 1])
        return ListRootsResult(roots=[Root(uri=uri) for uri in self.roots])  # type: ignore[arg-type]

    async def elicit(self, _ctx: Any, _params: Any) -> ElicitResult:
        self.questions.append("name")
        return ElicitResult(action="accept", content={"name": self.name})

    async def log(self, params: LoggingMessageNotificationParams) -> None:
        self.logs.append(params)


async def test_two_callers_are_asked_their_own_questions_at_the_same_time(gateway: Running) -> None:
    tokens = {who: (await create_token(gateway, servers="*"))["token"] for who in ("alice", "bob")}
    both = anyio.Event()
    asked = [anyio.Event(), anyio.Event()]
    alice = Caller("alice", ["file:///home/alice"], both, asked)
    bob = Caller("bob", ["file:///home/bob/a", "file:///home/bob/b"], both, asked)
    results: dict[str, str] = {}
    with anyio.fail_after(30):
        async with (
            # Alice can answer elicitations; Bob declares roots only.
            gateway.client(
                "vs", token=tokens["alice"], list_roots_callback=alice.list_roots,
                elicitation_callback=alice.elicit, logging_callback=alice.log,
            ) as alice_client,
            gateway.client("vs", token=tokens["bob"], list_roots_callback=bob.list_roots, logging_callback=bob.log) as bob_client,
        ):
            await alice_client.set_logging_level("info")
            await bob_client.set_logging_level("error")

            async def call(who: str, client: Any, tool: str, args: dict[str, Any]) -> None:
                result = await client.call_tool(tool, args)
                results[f"{who}:{tool}"] = result.content[0].text

            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "alice", alice_client, "ask__count_roots", {})
                tg.start_soon(call, "bob", bob_client, "ask__count_roots", {})
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "alice", alice_client, "ask__log_line", {"message": "for alice"})
                tg.start_soon(call, "bob", bob_client, "ask__log_line", {"message": "for bob"})
            await call("alice", alice_client, "ask__ask_name", {})
            with pytest.raises(MCPError, match="Elicitation not supported"):  # as the upstream says it directly
                await bob_client.call_tool("ask__ask_name", {})

    assert results["alice:ask__count_roots"] == "1 roots: file:///home/alice"
    assert results["bob:ask__count_roots"] == "2 roots: file:///home/bob/a, file:///home/bob/b"
    # Each sees only its own log lines, at its own level (Bob asked for errors only).
    assert [e.data for e in alice.logs] == ["for alice"]
    assert bob.logs == []
    # Alice declared elicitation and is asked; Bob did not, so the upstream never asks him (nor her for him).
    assert results["alice:ask__ask_name"] == "Hello, alice!"
    assert alice.questions == ["roots", "name"] and bob.questions == ["roots"]


async def test_a_stdio_upstream_pinned_to_2025_11_25_keeps_its_shared_session_honest(tmp_path: Path) -> None:
    """One process, one session: a caller's log is delivered only when the call is the only one in flight."""
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        created = await gateway.register({**stdio_fixture("fx"), "protocol": "2025-11-25"})
        assert created["protocol"] == "2025-11-25"
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        state = (await gateway.api.get("/api/v1/upstreams/fx")).json()
        assert state["protocol_version"] == "2025-11-25"
        logs: list[LoggingMessageNotificationParams] = []

        async def log(params: LoggingMessageNotificationParams) -> None:
            logs.append(params)

        async with gateway.client("vs", mode="legacy", logging_callback=log) as client:
            await client.call_tool("fx__log", {"message": "mine"})
        assert [e.data for e in logs] == ["mine"]


async def test_stdio_per_session_gives_each_caller_that_can_be_asked_its_own_process(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        await gateway.register({**stdio_fixture("fx"), "isolation": "per_session"})
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})

        async def roots(_ctx: Any) -> ListRootsResult:
            return ListRootsResult(roots=[])

        async def pid(**kwargs: Any) -> str:
            async with gateway.client("vs", mode="legacy", **kwargs) as client:
                first = (await client.call_tool("fx__pid", {})).content[0].text  # type: ignore[union-attr]
                assert (await client.call_tool("fx__pid", {})).content[0].text == first  # type: ignore[union-attr]
                return first

        shared = await pid()  # nothing to ask this caller: the shared (2026-07-28) process serves it
        assert shared == await pid()
        own = {await pid(list_roots_callback=roots), await pid(list_roots_callback=roots)}
        assert len(own) == 2 and shared not in own
