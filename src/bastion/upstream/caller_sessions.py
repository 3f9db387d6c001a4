"""Callers' own upstream sessions: opened lazily, reaped when idle, bounded per upstream and user.

Keyed by (upstream, caller key); the caller key always includes the verified user
(core.upstream_sessions.caller_key), so no session is ever found by a session id alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.abc

from bastion.core.errors import UpstreamUnavailable
from bastion.core.ports import AskCallback, CallHooks
from bastion.core.upstream_sessions import caller_digest
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
        """Calls in flight per key, from before their session is found (or made) to their end."""
        self._using: dict[int, int] = {}
        """Calls in flight per session (by id), once it is found: what a retiring session waits on."""
        self._retiring: dict[int, tuple[tuple[str, str], str, CallerSession]] = {}
        """Sessions `drop_caller` took out of the table while a call was in flight on them (or being
        started on them), with their key and user: stopped once no call is; still counted in the bounds."""
        self._callers: dict[str, int] = {}
        """How many sessions in the table each caller key has (upstreams), and so `_digests`' keys."""
        self._digests: dict[str, str] = {}
        """`caller_digest` of each caller key with a session here -> the key (what the change feed names)."""
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
                    self._attach(key, user or "", conn)
                    await self._runner.start(f"upstream:{upstream}:caller", conn.run)
        conn.last_used = anyio.current_time()
        return conn

    def caller_of(self, digest: str) -> str | None:
        """The caller key whose `caller_digest` this is, if it has a session here."""
        return self._digests.get(digest)

    def of_caller(self, caller: str) -> list[CallerSession]:
        """The caller's own sessions, on every upstream (none of anyone else's: the key names the caller)."""
        return [conn for (_upstream, key), conn in self._conns.items() if key == caller]

    @contextmanager
    def hold(self, upstream: str, caller: str) -> Iterator[None]:
        """Marks a call starting on the caller's session, from before the session is found or made:
        it is not reaped or evicted under it (and a session `drop_caller` takes out meanwhile waits)."""
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
            self._stop_retired(key)

    @contextmanager
    def using(self, conn: CallerSession) -> Iterator[None]:
        """Marks a call in flight on this session (inside `hold`): once `drop_caller` took it out of the
        table, it is stopped when its own last call ends, whatever calls its key's new session has."""
        ident = id(conn)
        self._using[ident] = self._using.get(ident, 0) + 1
        try:
            yield
        finally:
            left = self._using.get(ident, 1) - 1
            if left > 0:
                self._using[ident] = left
            else:
                self._using.pop(ident, None)
                retired = self._retiring.pop(ident, None)
                if retired is not None:
                    self._stop_later(retired[0], conn)

    def drop_caller(self, caller: str) -> None:
        """Ends the caller's own sessions on every upstream (its roots changed where they cannot be
        told): each leaves the table at once, so the next call opens a new one, which asks the caller
        afresh. One with a call in flight on it (or being started on it) is stopped once that call ends;
        no new call is given it."""
        for key in [k for k in self._conns if k[1] == caller]:
            user = self._users.get(key, "")
            conn = self._detach(key)
            if conn is None:
                continue
            if self._using.get(id(conn)) or self._busy.get(key):
                self._retiring[id(conn)] = (key, user, conn)
            else:
                self._stop_later(key, conn)

    def _stop_retired(self, key: tuple[str, str]) -> None:
        """No call of `key` is starting: stop its retiring sessions no call is on (one whose making
        failed, or was taken out as it was being made and then not used)."""
        if self._busy.get(key):
            return  # a call still starting may be about to use the one it made
        for ident, (retired_key, _user, conn) in list(self._retiring.items()):
            if retired_key == key and not self._using.get(ident):
                del self._retiring[ident]
                self._stop_later(key, conn)

    def _stop_later(self, key: tuple[str, str], conn: CallerSession) -> None:
        self._runner.spawn(f"upstream:{key[0]}:caller-stop", conn.stop)

    async def _make_room(self, upstream: str, user: str, stdio: bool) -> None:
        cap = self._limits.stdio_per_upstream if stdio else self._limits.per_upstream
        retiring = [(k, u) for k, u, _c in self._retiring.values() if k[0] == upstream]  # still running: they count
        for keys, limit, what, leaving in (
            ([k for k in self._conns if k[0] == upstream], cap, f"upstream {upstream!r}", len(retiring)),
            (
                [k for k in self._conns if k[0] == upstream and self._users[k] == user],
                self._limits.per_user,
                "this user",
                sum(1 for _k, u in retiring if u == user),
            ),
        ):
            if len(keys) + leaving < limit:
                continue
            idle = [k for k in keys if not self._busy.get(k)]
            if not idle:
                raise UpstreamUnavailable(f"too many upstream sessions for {what} ({limit}); try again later")
            oldest = min(idle, key=lambda k: self._conns[k].last_used)
            await self._drop(oldest)

    def _attach(self, key: tuple[str, str], user: str, conn: CallerSession) -> None:
        self._conns[key] = conn
        self._users[key] = user
        caller = key[1]
        self._callers[caller] = self._callers.get(caller, 0) + 1
        if self._callers[caller] == 1:
            self._digests[caller_digest(caller)] = caller

    def _detach(self, key: tuple[str, str]) -> CallerSession | None:
        self._users.pop(key, None)
        conn = self._conns.pop(key, None)
        if conn is not None:
            caller = key[1]
            left = self._callers.get(caller, 1) - 1
            if left > 0:
                self._callers[caller] = left
            else:
                self._callers.pop(caller, None)
                self._digests.pop(caller_digest(caller), None)
        return conn

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
            await self._drop_all([k for k in self._conns if k[0] == upstream], upstream)

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop_all(list(self._conns), None)

    async def _drop_all(self, keys: list[tuple[str, str]], retiring_of: str | None = "") -> None:
        """Drop these keys' sessions, and the retiring sessions of upstream `retiring_of` (None: every
        upstream's; "": none), concurrently: each stop may wait on its upstream (a DELETE, a child's exit)."""
        retired = [
            ident for ident, (k, _u, _c) in self._retiring.items() if retiring_of is None or (retiring_of and k[0] == retiring_of)
        ]
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(self._drop, key)
            for ident in retired:  # the upstream or Bastion is going: their calls end with them
                tg.start_soon(self._retiring.pop(ident)[2].stop)
