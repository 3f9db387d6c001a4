"""Issue 9 finding 4 (class: one caller's data reaches another): whatever a 2025-11-25 upstream
sends during a call (log lines, questions) reaches the caller whose call produced it, or nobody.

Two callers with their own tokens on one legacy-only upstream (HTTP+SSE, so one upstream
session per connection). Bob's call is held open by his own unanswered question while Alice's
call logs a private line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import ElicitResult, LoggingMessageNotificationParams

from tests.e2e.test_bridge import asking_url  # noqa: F401 - the legacy-only upstream, as a fixture
from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, serve, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway(asking_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as running:
        await running.register({"name": "ask", "transport": "sse", "url": asking_url})
        await running.create_server({"name": "vs", "upstreams": ["ask"], "visibility": "public"})
        yield running


class Logs:
    def __init__(self) -> None:
        self.entries: list[LoggingMessageNotificationParams] = []

    async def __call__(self, params: LoggingMessageNotificationParams) -> None:
        self.entries.append(params)


async def test_a_log_line_of_one_callers_call_never_reaches_another_caller(gateway: Running) -> None:
    alice = (await create_token(gateway, servers="*"))["token"]
    bob = (await create_token(gateway, servers="*"))["token"]
    bob_logs, alice_logs = Logs(), Logs()
    bob_asked, alice_done = anyio.Event(), anyio.Event()

    async def bob_answers(_ctx: Any, _params: Any) -> ElicitResult:
        bob_asked.set()
        await alice_done.wait()  # Bob's call stays in flight while Alice's runs
        return ElicitResult(action="accept", content={"name": "Bob"})

    with anyio.fail_after(30):
        async with (
            gateway.client("vs", token=bob, logging_callback=bob_logs, elicitation_callback=bob_answers) as bob_client,
            gateway.client("vs", token=alice, logging_callback=alice_logs) as alice_client,
            anyio.create_task_group() as tg,
        ):
            await bob_client.set_logging_level("info")  # Bob asked for logs; Alice did not
            bob_result: dict[str, Any] = {}

            async def bob_calls() -> None:
                bob_result["r"] = await bob_client.call_tool("ask__ask_name", {})

            tg.start_soon(bob_calls)
            await bob_asked.wait()
            result = await alice_client.call_tool("ask__log_line", {"message": "alice's private note"})
            assert result.content[0].text == "logged"  # type: ignore[union-attr]
            alice_done.set()
        assert bob_result["r"].content[0].text == "Hello, Bob!"
    assert [e.data for e in bob_logs.entries] == []
    # Directly, a 2025-11-25 client that set no level gets the upstream's logs; through Bastion too.
    assert [e.data for e in alice_logs.entries] == ["alice's private note"]
