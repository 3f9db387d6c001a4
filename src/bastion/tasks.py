"""The one way Bastion starts background work: named tasks in a task group it owns."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
import anyio.abc

log = logging.getLogger("bastion.tasks")


class TaskRunner:
    """Runs named background tasks in one task group; a task that fails is logged, not fatal."""

    def __init__(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        self.running: set[str] = set()

    def spawn(self, name: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        async def guarded() -> None:
            self.running.add(name)
            try:
                await fn(*args)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                log.exception("background task %s failed", name)
            finally:
                self.running.discard(name)

        self._tg.start_soon(guarded, name=name)

    async def start(self, name: str, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """Start a task that reports readiness through `task_status`."""
        return await self._tg.start(fn, *args, name=name)
