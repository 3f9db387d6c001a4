"""Era bridge, 2026-07-28 client side: a 2025-11-25 upstream that asks for input mid-call.

The upstream sends a live sampling/elicitation/roots request during the call; a 2026-07-28 client
cannot receive one. So the call runs in the background, and its first question comes back to the
client as an `input_required` result with a sealed `requestState` (bound to the caller and the
virtual server, expiring). The client's retry with the answer resumes the held call, which then
finishes or asks again. Held calls live in this process: a retry must reach the same replica.
Each caller may hold a few such calls at once, and the process a bounded number in total: a client
that starts calls and never answers cannot pile up background work.

A 2026-07-28 upstream asks with `input_required` itself; its requestState is sealed here for the
caller the same way (the upstream sees one principal, Bastion, for every caller), so only the caller
it was issued to can resume it, on any replica.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bastion.core.errors import BadRequest, BastionError, TooManyRequests
from bastion.core.ports import CallHooks, StateSealer, UpstreamCaller
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext

Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]
_QUESTION_KEY = "bastion"
_BRIDGED = frozenset({"tools/call", "prompts/get", "resources/read"})


@dataclass
class _Held:
    """A call running in the background, and the question it is waiting on, if any."""

    owner: str
    server: str
    expires: float
    events: MemoryObjectReceiveStream[tuple[str, Any]] | None = None
    answer: MemoryObjectSendStream[dict[str, Any]] | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


class Bridge:
    def __init__(
        self,
        pool: UpstreamCaller,
        sealer: StateSealer,
        spawn: Spawn,
        ttl: float,
        *,
        per_caller: int = 8,
        total: int = 1000,
    ) -> None:
        self._pool = pool
        self._sealer = sealer
        self._spawn = spawn
        self._ttl = ttl
        self._held: dict[str, _Held] = {}
        self._per_caller = per_caller
        self._total = total
        self._live: Counter[str] = Counter()
        """Bridged calls running in the background, by caller (until the upstream's call ends)."""

    def _admit(self, caller: str) -> None:
        retry_after = max(1, int(min(self._ttl, 60)))
        if self._live[caller] >= self._per_caller:
            raise TooManyRequests(
                f"you have {self._live[caller]} calls waiting for input already (at most {self._per_caller}); "
                f"answer them, or wait until they expire ({self._ttl:g} s)",
                retry_after=retry_after,
            )
        if self._live.total() >= self._total:
            raise TooManyRequests("Bastion holds too many calls waiting for input right now", retry_after=retry_after)

    @property
    def held_count(self) -> int:
        """Calls held waiting for a client's answer on this replica."""
        return len(self._held)

    def stage(self) -> Stage:
        async def bridge(ctx: CallContext, call_next: Next) -> Result:
            state = ctx.params.get("requestState")
            if state is not None:
                held = self._opened(ctx, state)
                if "id" in held:
                    return await self._resume(ctx, held["id"])
                assert ctx.upstream_params is not None, "route runs before the bridge"
                ctx.upstream_params["requestState"] = held["upstream"]
            elif ctx.method in _BRIDGED and (ctx.hooks is None or ctx.hooks.ask is None):
                assert ctx.item is not None, "route runs before the bridge"
                if self._pool.asks_mid_call(ctx.item.upstream):
                    return await self._start(ctx, call_next)
            # A 2025-11-25 client is asked live, in dispatch; a 2026-07-28 upstream asks with input_required.
            return self._bound(ctx, await call_next(ctx))

        return bridge

    def _opened(self, ctx: CallContext, state: object) -> dict[str, Any]:
        """What a retry's requestState carries: a held call's id, or an upstream's own state. Only
        Bastion's, sealed for this caller, this server and (for an upstream's) this upstream."""
        try:
            held = self._sealer.unseal(state, self._context(ctx)) if isinstance(state, str) else {}
        except ValueError:
            held = {}
        upstream = ctx.item.upstream if ctx.item is not None else None
        if isinstance(held.get("id"), str) or (isinstance(held.get("upstream"), str) and held.get("via") == upstream):
            return held
        raise BadRequest("requestState was altered, expired, or issued to someone else")

    def _bound(self, ctx: CallContext, result: Result) -> Result:
        """An upstream's input_required result, its requestState sealed for this caller: the upstream
        binds it to the principal it sees, and behind Bastion every caller is that same principal."""
        state = result.get("requestState")
        if result.get("resultType") != "input_required" or not isinstance(state, str) or ctx.item is None:
            return result
        sealed = self._sealer.seal({"upstream": state, "via": ctx.item.upstream}, self._context(ctx))
        return {**result, "requestState": sealed}

    def _context(self, ctx: CallContext) -> str:
        owner = ctx.principal.id if ctx.principal is not None else ""
        return f"bridge|{owner}|{ctx.server}"

    async def _start(self, ctx: CallContext, call_next: Next) -> Result:
        self._expire()
        caller = ctx.principal.id if ctx.principal is not None else ""
        self._admit(caller)
        held = _Held(owner=self._context(ctx), server=ctx.server, expires=time.monotonic() + self._ttl)
        events_in, events_out = anyio.create_memory_object_stream[tuple[str, Any]](1)
        answers_in, answers_out = anyio.create_memory_object_stream[dict[str, Any]](1)
        held.events, held.answer = events_out, answers_in

        async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
            try:
                with anyio.fail_after(self._ttl):
                    await events_in.send(("ask", {"method": method, "params": params}))
                    return await answers_out.receive()
            except (TimeoutError, anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return {"code": -32603, "message": "the client did not answer in time"}

        async def run() -> None:
            try:
                hooks = replace(ctx.hooks or CallHooks(), ask=ask)
                outcome: tuple[str, Any] = ("result", await call_next(replace_hooks(ctx, hooks)))
            except BastionError as exc:
                outcome = ("error", exc)
            finally:
                held.done.set()
                self._live[caller] -= 1
                if self._live[caller] <= 0:
                    del self._live[caller]
            try:
                await events_in.send(outcome)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the client never came back for it

        self._live[caller] += 1
        self._spawn(f"bridge:{ctx.server}", run)
        return await self._next_outcome(ctx, held)

    async def _next_outcome(self, ctx: CallContext, held: _Held) -> Result:
        assert held.events is not None
        kind, value = await held.events.receive()
        if kind == "result":
            return dict(value)
        if kind == "error":
            raise value
        token = secrets.token_urlsafe(16)
        held.expires = time.monotonic() + self._ttl
        self._held[token] = held
        state = self._sealer.seal({"id": token}, held.owner)
        return {"resultType": "input_required", "inputRequests": {_QUESTION_KEY: value}, "requestState": state}

    async def _resume(self, ctx: CallContext, token: str) -> Result:
        held = self._held.pop(token, None)
        if held is None or held.expires < time.monotonic():
            raise BadRequest("requestState is no longer valid: the call it continued has ended")
        responses = ctx.params.get("inputResponses")
        answer = responses.get(_QUESTION_KEY) if isinstance(responses, dict) else None
        if not isinstance(answer, dict):
            raise BadRequest(f"inputResponses must answer {_QUESTION_KEY!r}")
        assert held.answer is not None
        await held.answer.send(answer)
        return await self._next_outcome(ctx, held)

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, h in self._held.items() if h.expires < now]:
            held = self._held.pop(token)
            if held.events is not None:
                held.events.close()
            if held.answer is not None:
                held.answer.close()


def replace_hooks(ctx: CallContext, hooks: CallHooks) -> CallContext:
    """A copy of the context for the background run (the request's own may be reused), every field
    kept (principal, address, trace context) but the hooks."""
    return replace(ctx, hooks=hooks)
