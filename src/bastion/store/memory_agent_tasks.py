"""The in-memory AgentTaskHolders (tests and single-process tools): same contract as the SQL one."""

from __future__ import annotations

import time
from collections.abc import Callable


class MemoryAgentTaskHolders:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._held: dict[tuple[str, str, str], tuple[str, float]] = {}

    async def holds(self, upstream: str, kind: str, ident: str, holder: str) -> bool:
        held = self._held.get((upstream, kind, ident))
        return held is not None and held[0] == holder and held[1] > self._now()

    async def claim(self, upstream: str, kind: str, ident: str, holder: str, ttl: float) -> bool:
        now = self._now()
        for key in [k for k, (_, until) in self._held.items() if until <= now]:
            del self._held[key]  # lapsed holds are nobody's, and do not pile up
        held = self._held.get((upstream, kind, ident))
        if held is not None and held[0] != holder:
            return False
        self._held[(upstream, kind, ident)] = (holder, now + ttl)
        return True
