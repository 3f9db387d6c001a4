"""Access tokens revoked in this process (by `jti`), remembered until they would have expired anyway."""

from __future__ import annotations

import time
from collections.abc import Callable

_LIMIT = 100_000


class RevokedTokens:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}

    def add(self, jti: str, expires_at: float) -> None:
        now = self._clock()
        if len(self._until) >= _LIMIT:
            self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[jti] = expires_at

    def __contains__(self, jti: object) -> bool:
        return isinstance(jti, str) and self._until.get(jti, 0.0) > self._clock()
