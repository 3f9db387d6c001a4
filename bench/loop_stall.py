"""The longest event-loop stall while some work runs: what every other caller of a gateway would
wait at worst meanwhile."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def stalled(work: Callable[[], Any]) -> tuple[float, float]:
    """How long `work` (sync, or returning an awaitable) takes, and the longest gap between 1 ms
    ticks of the event loop meanwhile."""
    worst, done = 0.0, asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    start = time.perf_counter()
    result = work()
    if inspect.isawaitable(result):
        await result
    took = time.perf_counter() - start
    done.set()
    await task
    return took, worst
