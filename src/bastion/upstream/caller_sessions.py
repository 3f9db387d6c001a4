"""Callers' own upstream sessions: opened lazily, reaped when idle, bounded per upstream and user.

Keyed by (upstream, caller key); the caller key always includes the verified user
(core.upstream_sessions.caller_key), so no session is ever found by a session id alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.abc

from bastion.core.errors import UpstreamUnavailable
from bastion.core.ports import AskCallback, CallHooks
from bastion.tasks import TaskRunner

log = logging.getLogger("bastion.upstream")


class CallerSession(Protocol):
    """A caller's own upstream session: an SDK-backed `UpstreamConnection` (stdio, SSE) or, on
    Streamable HTTP, Bastion's own `CallerHttpSession`."""

    last_used: float

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = ...) -> None: ...
    async def wait_ready(self, timeout: float) -> None: ...
    async def request(
        self, method: str, params: dict[str, Any] | None, *, timeout: float, hooks: CallHooks | None = None
    ) -> dict[str, Any]: ...
    async def roots_changed(self, ask: AskCallback) -> None:
        """The caller changed its roots: tell the upstream; `ask` puts to the caller a `roots/list`
        the upstream then asks outside any call."""
        ...

    async def stop(self) -> None: ...


Factory = Callable[[], CallerSession]


@dataclass(frozen=True, slots=True)
class Limits:
    per_upstream: int = 1000
    per_user: int = 100
    stdio_per_upstream: int = 16
    """A caller's own session on stdio is a process: far fewer of those."""
    idle: float = 600.0


class CallerSessions:
    def __init__(self, runner: TaskRunner, limits: Limits) -> None:
        self._runner = runner
        self._limits = limits
        self._conns: dict[tuple[str, str], CallerSession] = {}
        self._users: dict[tuple[str, str], str] = {}
        self._busy: dict[tuple[str, str], int] = {}
        self._retiring: dict[tuple[str, str], list[CallerSession]] = {}
        """Sessions out of the table (`drop_caller` while calls were in flight on them), stopped once
        their key has no call in flight."""
        self._lock = anyio.Lock()

    def __len__(self) -> int:
        return len(self._conns)

    async def get(self, upstream: str, caller: str, user: str | None, stdio: bool, make: Factory) -> CallerSession:
        key = (upstream, caller)
        conn = self._conns.get(key)
        if conn is None:
            async with self._lock:
                conn = self._conns.get(key)
                if conn is None:
                    await self._make_room(upstream, user or "", stdio)
                    conn = make()
                    self._conns[key] = conn
                    self._users[key] = user or ""
                    await self._runner.start(f"upstream:{upstream}:caller", conn.run)
        conn.last_used = anyio.current_time()
        return conn

    def callers(self) -> set[str]:
        """The keys of every caller with an own session here."""
        return {key for _upstream, key in self._conns}

    def of_caller(self, caller: str) -> list[CallerSession]:
        """The caller's own sessions, on every upstream (none of anyone else's: the key names the caller)."""
        return [conn for (_upstream, key), conn in self._conns.items() if key == caller]

    @contextmanager
    def hold(self, upstream: str, caller: str) -> Iterator[None]:
        """Marks a call in flight on the caller's session, so it is not reaped or evicted under it, and
        a session `drop_caller` took out of the table meanwhile is stopped only after it."""
        key = (upstream, caller)
        self._busy[key] = self._busy.get(key, 0) + 1
        try:
            yield
        finally:
            left = self._busy.get(key, 1) - 1
            if left > 0:
                self._busy[key] = left
            else:
                self._busy.pop(key, None)
                for conn in self._retiring.pop(key, ()):
                    self._stop_later(key, conn)

    def drop_caller(self, caller: str) -> None:
        """Ends the caller's own sessions on every upstream (its roots changed through another replica,
        which could not tell them): each leaves the table at once, so the next call opens a new one,
        which asks the caller afresh. One with a call in flight is stopped once no call of that key
        is in flight (the call goes on on it; no new call is given it)."""
        for key in [k for k in self._conns if k[1] == caller]:
            conn = self._detach(key)
            if conn is None:
                continue
            if self._busy.get(key):
                self._retiring.setdefault(key, []).append(conn)
            else:
                self._stop_later(key, conn)

    def _stop_later(self, key: tuple[str, str], conn: CallerSession) -> None:
        self._runner.spawn(f"upstream:{key[0]}:caller-stop", conn.stop)

    async def _make_room(self, upstream: str, user: str, stdio: bool) -> None:
        cap = self._limits.stdio_per_upstream if stdio else self._limits.per_upstream
        for keys, limit, what in (
            ([k for k in self._conns if k[0] == upstream], cap, f"upstream {upstream!r}"),
            ([k for k in self._conns if k[0] == upstream and self._users[k] == user], self._limits.per_user, "this user"),
        ):
            if len(keys) < limit:
                continue
            idle = [k for k in keys if not self._busy.get(k)]
            if not idle:
                raise UpstreamUnavailable(f"too many upstream sessions for {what} ({limit}); try again later")
            oldest = min(idle, key=lambda k: self._conns[k].last_used)
            await self._drop(oldest)

    def _detach(self, key: tuple[str, str]) -> CallerSession | None:
        self._users.pop(key, None)
        return self._conns.pop(key, None)

    async def _drop(self, key: tuple[str, str]) -> None:
        conn = self._detach(key)
        if conn is not None:
            await conn.stop()

    async def drop(self, upstream: str, caller: str) -> None:
        async with self._lock:
            await self._drop((upstream, caller))

    async def reap_idle(self) -> None:
        now = anyio.current_time()
        async with self._lock:
            stale = [
                k for k, c in self._conns.items() if not self._busy.get(k) and now - c.last_used > self._limits.idle
            ]
            await self._drop_all(stale)

    async def close(self, upstream: str) -> None:
        async with self._lock:
            await self._drop_all([k for k in self._conns if k[0] == upstream], [k for k in self._retiring if k[0] == upstream])

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop_all(list(self._conns), list(self._retiring))

    async def _drop_all(self, keys: list[tuple[str, str]], retiring: Sequence[tuple[str, str]] = ()) -> None:
        # Concurrently: each stop may wait on its upstream (a DELETE, a child's exit).
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(self._drop, key)
            for key in retiring:  # the upstream or Bastion is going: their calls end with them
                for conn in self._retiring.pop(key, ()):
                    tg.start_soon(conn.stop)
