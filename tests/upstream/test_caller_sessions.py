"""A caller's own upstream sessions end when its roots changed through another replica (`drop_caller`):
idle ones at once, one with a call in flight once its last call ends; nobody else's. The session's
key, which names them on every replica, is the same wherever the session is served."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.abc
import pytest

from bastion.app.shared import RootsEverywhere
from bastion.core.errors import UpstreamUnavailable
from bastion.core.ports import AskCallback, CallHooks
from bastion.core.upstream_sessions import caller_digest, caller_key
from bastion.tasks import TaskRunner
from bastion.upstream.caller_sessions import CallerSessions, Limits
from bastion.upstream.pool import UpstreamPool
from bastion.web.caller_roots import roots_changed_handler
from bastion.web.relay import session_key

pytestmark = pytest.mark.anyio


class Session:
    """A caller's own session that only notes whether it was stopped."""

    def __init__(self) -> None:
        self.last_used = 0.0
        self.stopped = anyio.Event()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await self.stopped.wait()

    async def wait_ready(self, timeout: float) -> None:
        return None

    async def request(
        self, method: str, params: dict[str, Any] | None, *, timeout: float, hooks: CallHooks | None = None
    ) -> dict[str, Any]:
        return {}

    async def roots_changed(self, ask: AskCallback) -> None:
        return None

    async def stop(self) -> None:
        self.stopped.set()


@contextmanager
def _call(sessions: CallerSessions, conn: Any, upstream: str, caller: str) -> Iterator[None]:
    """A call on `conn` as the pool makes one: held on its key, then in flight on the session."""
    with sessions.hold(upstream, caller), sessions.using(conn):
        yield


async def test_a_callers_sessions_leave_at_once_and_a_busy_one_stops_after_its_calls() -> None:
    async with anyio.create_task_group() as tg:
        sessions = CallerSessions(TaskRunner(tg), Limits())
        made: dict[tuple[str, str], Session] = {}

        async def get(upstream: str, caller: str) -> Any:
            def make() -> Session:
                return made.setdefault((upstream, caller), Session())

            return await sessions.get(upstream, caller, "u1", stdio=True, make=make)

        idle, busy, other = await get("fs", "u1|s|a"), await get("mem", "u1|s|a"), await get("fs", "u1|s|b")
        assert sessions.caller_of(caller_digest("u1|s|a")) == "u1|s|a"
        with _call(sessions, busy, "mem", "u1|s|a"):
            sessions.drop_caller("u1|s|a")
            with anyio.fail_after(5):
                await idle.stopped.wait()
            assert sessions.of_caller("u1|s|a") == [] and sessions.caller_of(caller_digest("u1|s|a")) is None
            # A call that starts meanwhile does not get the old session (its roots are the old ones),
            # even while calls keep overlapping on the key: it gets a new one.
            made.clear()
            fresh = await get("mem", "u1|s|a")
            assert fresh is not busy
            with _call(sessions, fresh, "mem", "u1|s|a"):
                assert not busy.stopped.is_set()  # the first call is still in flight on it
            assert not busy.stopped.is_set()
        with anyio.fail_after(5):
            await busy.stopped.wait()
        assert not fresh.stopped.is_set() and not other.stopped.is_set()
        assert sessions.of_caller("u1|s|a") == [fresh]

        made.clear()
        assert await get("fs", "u1|s|a") is not idle  # the next call opens a new session
        with _call(sessions, other, "fs", "u1|s|b"):
            sessions.drop_caller("u1|s|b")
            await sessions.aclose()  # shutting down stops a retiring session at once
            assert other.stopped.is_set()
        tg.cancel_scope.cancel()


async def test_a_retiring_session_stops_after_its_own_calls_while_its_keys_calls_overlap() -> None:
    """Calls of one key kept overlapping while its roots kept changing elsewhere: each session taken
    out waited for the key to have no call at all, and they piled up past the bound of processes."""
    async with anyio.create_task_group() as tg:
        sessions = CallerSessions(TaskRunner(tg), Limits(stdio_per_upstream=2, per_user=2))
        made: list[Session] = []

        def make() -> Session:
            made.append(Session())
            return made[-1]

        calls: list[Any] = []
        for _ in range(10):
            conn = await sessions.get("fs", "u1|s|a", "u1", True, make)
            call = _call(sessions, conn, "fs", "u1|s|a")
            call.__enter__()
            calls.append(call)
            if len(calls) > 1:
                calls.pop(0).__exit__(None, None, None)  # the previous call ends; the new one is in flight
            sessions.drop_caller("u1|s|a")
        with anyio.fail_after(5):
            for session in made[:-1]:
                await session.stopped.wait()
        assert not made[-1].stopped.is_set()  # its call is still in flight
        calls.pop().__exit__(None, None, None)
        with anyio.fail_after(5):
            await made[-1].stopped.wait()
        tg.cancel_scope.cancel()


async def test_retiring_sessions_count_in_the_bounds() -> None:
    async with anyio.create_task_group() as tg:
        sessions = CallerSessions(TaskRunner(tg), Limits(stdio_per_upstream=2, per_user=2))
        first = await sessions.get("fs", "u1|s|a", "u1", True, Session)
        with _call(sessions, first, "fs", "u1|s|a"):
            sessions.drop_caller("u1|s|a")
            second = await sessions.get("fs", "u1|s|a", "u1", True, Session)
            with _call(sessions, second, "fs", "u1|s|a"):
                with pytest.raises(UpstreamUnavailable, match="too many upstream sessions"):
                    await sessions.get("fs", "u1|s|c", "u1", True, Session)  # two running, both busy
        await sessions.aclose()
        tg.cancel_scope.cancel()


def test_a_sessions_key_is_the_same_wherever_it_is_served() -> None:
    here, there = {}, {}  # two replicas' states of one session
    assert session_key(here, "0123abcd") == session_key(there, "0123abcd") == session_key(here, None)
    assert "0123abcd" not in session_key(here, "0123abcd")
    assert session_key({}, "0123abce") != session_key(here, "0123abcd")
    assert session_key({}, None) != session_key({}, None)  # no id (stdio): its own, random


class Pool:
    def __init__(self) -> None:
        self.told: list[tuple[str | None, str]] = []
        self.asks: list[AskCallback | None] = []

    async def roots_changed(self, user: str | None, session: str, ask: AskCallback | None) -> None:
        self.told.append((user, session))
        self.asks.append(ask)


class Feed:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.roots: list[str] = []

    async def publish_roots(self, caller: str) -> None:
        if self.fails:
            raise RuntimeError("down")
        self.roots.append(caller)


async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {}


async def test_changed_roots_are_told_here_and_announced_by_the_callers_digest() -> None:
    pool, feed = Pool(), Feed()
    await RootsEverywhere(pool, feed).roots_changed("u1", "key", ask)  # type: ignore[arg-type]
    assert pool.told == [("u1", "key")] and feed.roots == [caller_digest(caller_key("u1", "key", None))]


async def test_changed_roots_that_cannot_be_announced_are_still_told_here(caplog: pytest.LogCaptureFixture) -> None:
    pool = Pool()
    await RootsEverywhere(pool, Feed(fails=True)).roots_changed("u1", "key", ask)  # type: ignore[arg-type]
    assert pool.told == [("u1", "key")]
    assert any("could not be announced" in r.getMessage() for r in caplog.records)


class Connection:
    def __init__(self, standalone: bool) -> None:
        self.has_standalone_channel = standalone
        self.state: dict[str, Any] = {}
        self.session_id = "0123abcd"


@pytest.mark.parametrize("standalone, open_here", [(True, True), (True, False), (False, False)])
async def test_a_caller_that_cannot_be_asked_here_has_its_sessions_ended_not_told(
    monkeypatch: pytest.MonkeyPatch, standalone: bool, open_here: bool
) -> None:
    """The upstream told of changed roots asks `roots/list` back at once, outside any call: with no
    stream of the caller's open on this replica it got an error and kept the old roots. Now the
    pool gets no asker then, and ends the caller's sessions (their next call asks afresh)."""
    connection = Connection(standalone)
    monkeypatch.setattr("bastion.web.caller_roots.session_connection", lambda: connection)
    pool = Pool()
    handle = roots_changed_handler(pool, lambda _connection: open_here)  # type: ignore[arg-type]
    ctx = SimpleNamespace(protocol_version="2025-11-25", request=None)
    await handle(ctx, None)  # type: ignore[arg-type]
    assert pool.told == [(None, session_key({}, "0123abcd"))]
    assert (pool.asks[0] is not None) is (standalone and open_here)


async def test_a_pool_told_of_roots_without_an_asker_ends_the_callers_sessions() -> None:
    async with anyio.create_task_group() as tg:
        sessions = CallerSessions(TaskRunner(tg), Limits())
        own = await sessions.get("fs", caller_key("u1", "key", None), "u1", True, Session)
        pool = SimpleNamespace(_callers=sessions)
        await UpstreamPool.roots_changed(pool, "u1", "key", None)  # type: ignore[arg-type]
        with anyio.fail_after(5):
            await own.stopped.wait()
        assert sessions.of_caller(caller_key("u1", "key", None)) == []
        tg.cancel_scope.cancel()
