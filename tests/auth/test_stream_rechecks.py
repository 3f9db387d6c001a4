"""Re-checking open streams after a revocation: the revocation is shared and announced first, the
revoking request does not wait for the re-check, one pass runs at a time (revocations arriving
meanwhile share the next), a revocation re-checks only the streams it may concern, and a re-check
does not mark an idle caller's token used."""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from bastion.app.shared import grant_revocation_hook, revocation_hooks
from bastion.auth.bearer import BearerVerifier
from bastion.auth.oauth.revoked import family_revocation
from bastion.auth.tokens import TokenVerifier, hash_token, user_revocation
from bastion.core.errors import Unauthenticated
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.context import Credential, Principal
from bastion.web.mcp_front import Guard
from bastion.web.refused_streams import EVERY_STREAM, StreamRechecks, end_refused_streams
from tests.auth.test_tokens import SECRET, Clock, FakeRepo, token

pytestmark = pytest.mark.anyio


class Recorded:
    """The shared revoked-ids list and the change feed, writing what happens into `events`."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def revoke(self, token_id: str, ttl: float) -> None:
        self.events.append(f"shared list: {token_id}")

    async def publish_revocation(self, token_id: str) -> None:
        self.events.append(f"published: {token_id}")


class SlowPass:
    """A re-check that never finishes: it is only asked for (called), never to be waited for."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def __call__(self, *revoked: str) -> SlowPass:
        self.events.append(f"re-check: {', '.join(revoked)}")
        return self

    def __await__(self) -> Generator[Any, None, None]:
        return anyio.Event().wait().__await__()  # waited for: the revocation would hang here


async def test_a_revocation_is_shared_and_announced_before_streams_are_rechecked_and_does_not_wait() -> None:
    events: list[str] = []
    recorded = Recorded(events)
    shared: Any = type("SharedLike", (), {"revocations": recorded, "feed": recorded})()
    verifier = TokenVerifier(hash_token("bst_admin"))
    revoke_everywhere, revoked_elsewhere = revocation_hooks(verifier, None, shared, SlowPass(events))
    with anyio.fail_after(5):
        await revoke_everywhere("t1")
        await revoked_elsewhere("t2")  # the change feed's listener does not wait either
    assert events == ["shared list: t1", "published: t1", "re-check: t1", "re-check: t2"]


@dataclass
class FakeFront:
    name: str
    guards: dict[Any, Guard] = field(default_factory=dict)


class Stream:
    """An open stream: ended when its guard's close is called."""

    def __init__(self, front: FakeFront, secret: str, principal: Principal | None) -> None:
        self.ended = anyio.Event()
        front.guards[self] = Guard(Credential(f"Bearer {secret}", None), self._close, principal)

    async def _close(self, _stream: Any) -> None:
        self.ended.set()


class GatedVerifier:
    """Refuses `refused` secrets; each verification waits for `gate` (when set) and is counted."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused
        self.verified: list[str] = []
        self.gate: anyio.Event | None = None
        self.running = self.most_at_once = 0

    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal:
        secret = (authorization or "").removeprefix("Bearer ")
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            self.verified.append(secret)
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.running -= 1
        if secret in self.refused:
            raise Unauthenticated("revoked")
        return Principal(id="token:x", kind="token")


async def test_one_pass_at_a_time_and_revocations_during_a_pass_share_the_next() -> None:
    front = FakeFront("vs")
    a = Stream(front, "a", Principal(id="token:ta", kind="token", user="ua", token="ta"))
    b = Stream(front, "b", Principal(id="token:tb", kind="token", user="ub", token="tb"))
    c = Stream(front, "c", Principal(id="token:tc", kind="token", user="uc", token="tc"))
    verifier = GatedVerifier(refused={"a", "b"})
    verifier.gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        rechecks = StreamRechecks(lambda: [front], Authenticator(verifier), lambda _name, fn: tg.start_soon(fn))  # type: ignore[list-item]
        rechecks.request("ta")
        with anyio.fail_after(5):
            while verifier.verified != ["a"]:
                await anyio.sleep(0)
        rechecks.request(user_revocation("ub"))  # both arrive while the first pass is held
        rechecks.request("tb")
        verifier.gate.set()
        with anyio.fail_after(5):
            await a.ended.wait()
            await b.ended.wait()
    assert verifier.verified == ["a", "b"]  # b once, in one further pass; c concerned by neither
    assert verifier.most_at_once == 1
    assert not c.ended.is_set() and list(front.guards) == [c]


async def test_a_revocation_concerns_its_token_its_user_and_streams_of_unknown_or_session_callers() -> None:
    front = FakeFront("vs")
    Stream(front, "tok", Principal(id="token:t1", kind="token", user="u1", token="t1"))
    Stream(front, "other", Principal(id="token:t2", kind="token", user="u2", token="t2"))
    Stream(front, "signed-in", Principal(id="user:u3", kind="user", user="u3"))
    Stream(front, "unknown", None)
    verifier = GatedVerifier(refused=set())
    authenticator = Authenticator(verifier)
    await end_refused_streams([front], authenticator, ["t1"])  # type: ignore[list-item]
    assert sorted(verifier.verified) == ["signed-in", "tok", "unknown"]  # a session is known by its user only
    verifier.verified.clear()
    await end_refused_streams([front], authenticator, [user_revocation("u2")])  # type: ignore[list-item]
    assert sorted(verifier.verified) == ["other", "unknown"]
    verifier.verified.clear()
    await end_refused_streams([front], authenticator, [EVERY_STREAM])  # type: ignore[list-item]
    assert sorted(verifier.verified) == ["other", "signed-in", "tok", "unknown"]


async def test_the_periodic_recheck_does_not_mark_an_idle_tokens_stream_as_a_use() -> None:
    clock, repo = Clock(), FakeRepo(token(servers=("vs",)))
    verifier = TokenVerifier(hash_token("bst_admin"), repo, now=lambda: clock.wall, monotonic=lambda: clock.mono)  # type: ignore[arg-type]
    opened = await verifier.verify(f"Bearer {SECRET}", None)  # the request that opened the stream
    assert len(repo.touches) == 1
    front = FakeFront("vs")
    stream = Stream(front, SECRET, opened)
    clock.advance(3600)  # long past the touch interval: a recorded use would be written now
    # As the gateway composes it (app/root.py): stream re-checks verify through `unrecorded()`.
    authenticator = Authenticator(BearerVerifier(verifier.unrecorded()))
    await end_refused_streams([front], authenticator, [EVERY_STREAM])  # type: ignore[list-item]
    assert not stream.ended.is_set()
    assert len(repo.touches) == 1


class FailingVerifier(GatedVerifier):
    """As GatedVerifier, and a verification of `broken` fails unexpectedly (once the gate opens)."""

    broken = "x"

    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal:
        principal = await super().verify(authorization, client_ip)
        if (authorization or "").removeprefix("Bearer ") == self.broken:
            raise RuntimeError("the store broke mid-pass")
        return principal


async def test_a_pass_that_could_not_start_or_failed_does_not_stop_the_next() -> None:
    """Review finding: a spawn refused (shutting down) left the re-checks marked running for good, and a
    pass that failed left what arrived during it waiting for another revocation."""
    front = FakeFront("vs")
    a = Stream(front, "a", Principal(id="token:ta", kind="token", user="ua", token="ta"))
    verifier = FailingVerifier(refused={"a", "b"})
    refuse_spawn = [True]
    async with anyio.create_task_group() as tg:

        async def logged(fn: Any) -> None:  # as TaskRunner runs a task: a failure is logged, not raised
            try:
                await fn()
            except RuntimeError:
                pass

        def spawn(_name: str, fn: Any) -> None:
            if refuse_spawn[0]:
                raise RuntimeError("the task group is closing")
            tg.start_soon(logged, fn)

        rechecks = StreamRechecks(lambda: [front], Authenticator(verifier), spawn)  # type: ignore[list-item]
        rechecks.request("ta")  # no pass could start: said, not raised; the next request starts one
        refuse_spawn[0] = False
        rechecks.request("ta")
        with anyio.fail_after(5):
            await a.ended.wait()

        Stream(front, "x", Principal(id="token:tx", kind="token", user="ux", token="tx"))
        b = Stream(front, "b", Principal(id="token:tb", kind="token", user="ub", token="tb"))
        verifier.gate = anyio.Event()
        rechecks.request("tx")  # this pass fails once the gate opens ...
        with anyio.fail_after(5):
            while "x" not in verifier.verified:
                await anyio.sleep(0)
        rechecks.request("tb")  # ... and this arrived during it: the next pass takes it
        verifier.gate.set()
        with anyio.fail_after(5):
            await b.ended.wait()


class GrantChecks(GatedVerifier):
    """As GatedVerifier for requests; `verify_grant` (the re-check of a grant-bound stream) admits
    the grants of `alive` secrets, expired or not, and is counted apart."""

    def __init__(self, refused: set[str], alive: set[str]) -> None:
        super().__init__(refused)
        self.alive = alive
        self.by_grant: list[str] = []

    async def verify_grant(self, authorization: str | None) -> Principal:
        secret = (authorization or "").removeprefix("Bearer ")
        self.by_grant.append(secret)
        if secret not in self.alive:
            raise Unauthenticated("its grant was revoked")
        return Principal(id="user:u1", kind="user", user="u1")


def grant(family: str, user: str = "u1") -> str:
    return json.dumps(["https://bastion.example", "client", family, user, "https://bastion.example/servers/vs/mcp"])


async def test_a_grant_bound_stream_is_judged_by_its_grant_and_concerned_by_its_family_and_user_only() -> None:
    front = FakeFront("vs")
    kept = Stream(front, "expired-but-granted", Principal(id="user:u1", kind="user", user="u1", oauth_grant=grant("f1")))
    dead = Stream(front, "revoked-grant", Principal(id="user:u1", kind="user", user="u1", oauth_grant=grant("f2")))
    tok = Stream(front, "api-token", Principal(id="token:t1", kind="token", user="u1", token="t1"))
    # The token verifier refuses every one of them (expired): only the API token's stream goes by it.
    verifier = GrantChecks(refused={"expired-but-granted", "revoked-grant", "api-token"}, alive={"expired-but-granted"})
    authenticator = Authenticator(verifier, grants=verifier)
    await end_refused_streams([front], authenticator, ["t9", "session-id"])  # type: ignore[list-item]
    assert verifier.by_grant == [] and not dead.ended.is_set()  # nothing of the grants'
    await end_refused_streams([front], authenticator, [family_revocation("f2")])  # type: ignore[list-item]
    assert verifier.by_grant == ["revoked-grant"] and dead.ended.is_set()
    assert verifier.verified == [] and not tok.ended.is_set()
    await end_refused_streams([front], authenticator, [user_revocation("u1")])  # type: ignore[list-item]
    assert verifier.by_grant == ["revoked-grant", "expired-but-granted"] and verifier.verified == ["api-token"]
    assert not kept.ended.is_set() and tok.ended.is_set()


async def test_without_a_grant_verifier_a_grant_bound_stream_is_judged_by_its_token() -> None:
    front = FakeFront("vs")
    stream = Stream(front, "expired", Principal(id="user:u1", kind="user", user="u1", oauth_grant=grant("f1")))
    verifier = GrantChecks(refused={"expired"}, alive={"expired"})
    await end_refused_streams([front], Authenticator(verifier), [EVERY_STREAM])  # type: ignore[list-item]
    assert stream.ended.is_set() and verifier.by_grant == []


async def test_a_revoked_grant_is_rechecked_here_and_announced_to_every_replica() -> None:
    events: list[str] = []
    recorded = Recorded(events)
    shared: Any = type("SharedLike", (), {"revocations": recorded, "feed": recorded})()
    with anyio.fail_after(5):
        await grant_revocation_hook(shared, SlowPass(events))(family_revocation("f1"))
    assert events == ["re-check: sid:f1", "published: sid:f1"]  # nothing else shared: the database says it
