"""A shared stdio upstream session's own log lines never reach another caller.

The reference server-everything's `toggle-simulated-logging` makes the session log a line every 5 s,
whoever asked for it and whether or not a call is running. Behind Bastion one stdio process is one
session shared by every caller, and a log line names no call: Bastion gave it to whichever caller's
call happened to be the only one in flight, so one caller's simulated logging reached another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.e2e.test_logging import Logs
from tests.e2e.test_token_scopes import create_token
from tests.harness import EVERYTHING, Running, serve, settings_for

pytestmark = pytest.mark.anyio
SIMULATED = "-level message"
"""What each of server-everything's simulated log lines says (`Info-level message`, ...)."""


@pytest.fixture
async def everything(tmp_path: Path) -> AsyncIterator[Running]:
    if not EVERYTHING.exists():
        pytest.fail(f"{EVERYTHING} is missing: run scripts/install-node-tools first")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        await gateway.register({"name": "ev", "transport": "stdio", "command": "node", "args": [str(EVERYTHING), "stdio"]})
        await gateway.create_server({"name": "ev", "upstreams": ["ev"]})
        yield gateway


def simulated(logs: Logs) -> list[str]:
    """The simulated log lines among those `logs` received."""
    return [str(e.data) for e in logs.entries if SIMULATED in str(e.data)]


async def long_call(client: object, seconds: int) -> None:
    """A call that stays in flight over at least one 5 s tick of the simulated logging."""
    result = await client.call_tool("ev__trigger-long-running-operation", {"duration": seconds, "steps": 2})  # type: ignore[attr-defined]
    assert result.is_error is not True


async def test_one_callers_simulated_logging_does_not_reach_another_caller(everything: Running) -> None:
    alice, bob = (await create_token(everything, servers="*"))["token"], (await create_token(everything, servers="*"))["token"]
    alice_logs, bob_logs = Logs(), Logs()
    with anyio.fail_after(60):
        async with (
            everything.client("ev", token=alice, logging_callback=alice_logs) as alice_client,
            everything.client("ev", token=bob, logging_callback=bob_logs) as bob_client,
        ):
            await alice_client.call_tool("ev__toggle-simulated-logging", {})
            # Alice's own call, while only Alice has used the session: her lines reach her (what
            # shows this test can see them at all).
            await long_call(alice_client, 6)
            assert simulated(alice_logs), alice_logs.entries
            # Bob's call is now the only one in flight at the next ticks: none of them is his.
            await long_call(bob_client, 11)
            await alice_client.call_tool("ev__toggle-simulated-logging", {})
    assert simulated(bob_logs) == [], bob_logs.entries
