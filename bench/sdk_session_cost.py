"""Benchmark: CPU per forwarded tools/call on an SDK client session over stdio (both eras).

Compares the two ways Bastion could send a call it forwards on the SDK's transports:
- raw: upstream/raw.py, Bastion's own request on the transport's streams (no result model);
- send_request: the SDK's public `ClientSession.send_request` with a permissive result type,
  which still validates the result against the protocol's model.
Only this process's CPU is counted (the fixture upstream is a child process).

    python bench/sdk_session_cost.py [--calls 1500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from pydantic import TypeAdapter

from bastion.upstream.raw import RawRequests
from bastion.upstream.transports import _Tapped

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "upstreams" / "fixture_server.py"
ARGS = {"name": "echo", "arguments": {"text": "x" * 2000}}
PERMISSIVE: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


async def measure(call: Callable[[], Awaitable[dict[str, Any]]], calls: int, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        for _ in range(100):
            await call()
        start = time.process_time()
        for _ in range(calls):
            result = await call()
        out.append(1e6 * (time.process_time() - start) / calls)
        assert result["content"][0]["text"] == ARGS["arguments"]["text"]
    return out


async def run(mode: str, way: str, calls: int, rounds: int) -> list[float]:
    params = StdioServerParameters(command=sys.executable, args=[str(FIXTURE), "--transport", "stdio"])
    raw = RawRequests(client_info={"name": "bench", "version": "1"}, capabilities={})

    @asynccontextmanager
    async def transport() -> AsyncIterator[tuple[Any, Any]]:
        async with stdio_client(params) as (read, write):
            raw.attach(write)
            yield _Tapped(read, anyio.Event(), raw), write

    async with Client(transport(), mode=mode, cache=None) as client:  # type: ignore[arg-type]
        session = client.session

        async def by_raw() -> dict[str, Any]:
            return await raw.request("tools/call", ARGS, version=client.protocol_version)

        async def by_send_request() -> dict[str, Any]:
            request = types.Request[Any, Any](method="tools/call", params=ARGS)
            return await session.send_request(request, PERMISSIVE)

        return await measure(by_raw if way == "raw" else by_send_request, calls, rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU us per call (this process), {args.calls} calls x {args.rounds} rounds; median (min)")
    for mode in ("legacy", "2026-07-28"):
        for way in ("raw", "send_request"):
            figures = sorted(anyio.run(run, mode, way, args.calls, args.rounds))
            print(f"{mode:10s} {way:13s} {figures[len(figures) // 2]:7.1f} ({figures[0]:.1f})")


if __name__ == "__main__":
    main()
