"""A caller's own upstream sessions end when its roots changed through another replica (`drop_caller`):
idle ones at once, one with a call in flight once its last call ends; nobody else's. The session's
key, which names them on every replica, is the same wherever the session is served."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import pytest

from bastion.app.shared import RootsEverywhere
from bastion.core.ports import AskCallback, CallHooks
from bastion.core.upstream_sessions import caller_digest, caller_key
from bastion.tasks import TaskRunner
from bastion.upstream.caller_sessions import CallerSessions, Limits
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


async def test_a_callers_sessions_leave_at_once_and_a_busy_one_stops_after_its_calls() -> None:
    async with anyio.create_task_group() as tg:
        sessions = CallerSessions(TaskRunner(tg), Limits())
        made: dict[tuple[str, str], Session] = {}

        async def get(upstream: str, caller: str) -> Any:
            def make() -> Session:
                return made.setdefault((upstream, caller), Session())

            return await sessions.get(upstream, caller, "u1", stdio=True, make=make)

        idle, busy, other = await get("fs", "u1|s|a"), await get("mem", "u1|s|a"), await get("fs", "u1|s|b")
        with sessions.hold("mem", "u1|s|a"):
            sessions.drop_caller("u1|s|a")
            with anyio.fail_after(5):
                await idle.stopped.wait()
            assert sessions.of_caller("u1|s|a") == [] and sessions.callers() == {"u1|s|b"}
            # A call that starts meanwhile does not get the old session (its roots are the old ones),
            # even while calls keep overlapping on the key: it gets a new one.
            made.clear()
            with sessions.hold("mem", "u1|s|a"):
                fresh = await get("mem", "u1|s|a")
                assert fresh is not busy
            assert not busy.stopped.is_set()  # the first call is still in flight on it
        with anyio.fail_after(5):
            await busy.stopped.wait()
        assert not fresh.stopped.is_set() and not other.stopped.is_set()
        assert sessions.of_caller("u1|s|a") == [fresh]

        made.clear()
        assert await get("fs", "u1|s|a") is not idle  # the next call opens a new session
        with sessions.hold("fs", "u1|s|b"):
            sessions.drop_caller("u1|s|b")
            await sessions.aclose()  # shutting down stops a retiring session at once
            assert other.stopped.is_set()
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

    async def roots_changed(self, user: str | None, session: str, ask: AskCallback) -> None:
        self.told.append((user, session))


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
