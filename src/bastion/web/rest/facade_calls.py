"""Long facade calls (`Prefer: respond-async`): 202 with a status URL, progress readable there and
as Server-Sent Events, and a question the tool asks mid-call surfaced there with a way to answer.

A call runs through the same pipeline in the background and belongs to the caller who started
it: anyone else gets 404 for its URLs. It runs on the replica that accepted it. With Redis
(`board`), that replica keeps the call's record current there, so every replica answers its status
URL and events and passes the caller's answers on; a call whose replica stopped shows as failed
once its lease runs out. Calls are forgotten `ttl` seconds after they end, or after a question goes
unanswered.

A call refused before it reaches its upstream (authentication, policy, rate limit, unknown tool,
arguments) is answered as a plain call's refusal, never a 202, and keeps nothing. A replica keeps
at most `per_caller` calls of one caller (its user, else its token) and `total` in all. Finished
calls count too (their results are held in memory), but a caller at its bound loses its oldest
finished call to a new one: only calls still running refuse the caller (429), and never anyone else.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from bastion.core.errors import BadRequest, BastionError, Conflict, NotFound, ServiceUnavailable, TooManyRequests
from bastion.core.ports import CallBoard, CallHooks
from bastion.pipeline.base import Next
from bastion.pipeline.context import CallContext, Principal
from bastion.web.bridge import with_capabilities
from bastion.web.json_depth import loads
from bastion.web.scope import PRINCIPAL_SCOPE_KEY, bound_holder

Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]
Shape = Callable[[dict[str, Any]], dict[str, Any]]
View = dict[str, Any]
MAX_CALLS = 10_000
"""Default bound of async calls on a replica, all callers (settings: `facade_calls_total`)."""
PER_CALLER = 32
"""Default bound of one caller's async calls on a replica (settings: `facade_calls_per_caller`)."""
RETRY_AFTER = 5
"""Seconds a caller with all of its calls running is told to wait."""
MAX_PROGRESS = 1000
LEASE = 15.0
"""Seconds a running call's record says its replica is alive; renewed every LEASE / 3."""
MIRROR_EVERY = 0.25
"""At most this often a run of progress updates is written to the board (state changes at once)."""
POLL = 0.25
"""How often a replica not running a call looks for its changes (events) or answers (the runner)."""
_ENDED = ("completed", "failed")

ANSWERABLE: dict[str, Any] = {"elicitation": {}, "sampling": {}}
"""What an async call can answer at its status URL: elicitation and sampling questions."""


@dataclass
class AsyncCall:
    owner: str
    server: str
    holder: str = ""
    """Whose bound the call counts against: its user, else its principal (`web.scope.bound_holder`)."""
    admitted: bool = False
    """The call passed every check and went to its upstream (only then is it answered with a 202)."""
    state: str = "running"
    progress: list[dict[str, Any]] = field(default_factory=list)
    question: dict[str, Any] | None = None
    asks: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    expires: float = 0.0
    changed: anyio.Event = field(default_factory=anyio.Event)
    answers: tuple[Any, Any] | None = None
    dirty: bool = False
    mirrored_at: float = 0.0

    def view(self) -> View:
        out: View = {"state": self.state, "progress": self.progress}
        if self.question is not None:
            out["question"] = self.question
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out

    def touch(self) -> None:
        event, self.changed = self.changed, anyio.Event()
        event.set()
        self.dirty = True

    def record(self) -> dict[str, Any]:
        """What the board holds: who may see the call, its view, and until when its replica is alive."""
        alive = time.time() + LEASE
        return {"owner": self.owner, "server": self.server, "view": self.view(), "asks": self.asks, "alive_until": alive}


def _owner(request: Request) -> str:
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return principal.id if isinstance(principal, Principal) else ""


def remote_view(record: dict[str, Any]) -> View:
    """A call's view from its board record; a running call whose replica stopped renewing it failed."""
    view: View = dict(record.get("view") or {})
    if view.get("state") not in _ENDED and float(record.get("alive_until") or 0) < time.time():
        view.pop("question", None)
        view["state"] = "failed"
        view["error"] = {"title": "Service unavailable", "status": 503, "detail": "the replica running this call stopped"}
    return view


async def _sse(next_view: Callable[[], Awaitable[tuple[View, int] | None]]) -> AsyncIterator[str]:
    """The call's events, from successive views: new progress, each question once, then the end."""
    sent, asked = 0, 0
    while True:
        seen = await next_view()
        if seen is None:
            yield f"event: error\ndata: {json.dumps({'state': 'failed', 'error': {'title': 'Not found', 'status': 404}})}\n\n"
            return
        view, asks = seen
        progress = view.get("progress") or []
        for item in progress[sent:]:
            yield f"event: progress\ndata: {json.dumps(item)}\n\n"
        sent = len(progress)
        if view.get("state") == "input_required" and view.get("question") is not None and asks != asked:
            asked = asks
            yield f"event: input_required\ndata: {json.dumps(view['question'])}\n\n"
        if view.get("state") in _ENDED:
            yield f"event: {'result' if view.get('result') is not None else 'error'}\ndata: {json.dumps(view)}\n\n"
            return


class AsyncCalls:
    def __init__(
        self,
        pipeline: Next,
        spawn: Spawn,
        ttl: float,
        board: CallBoard | None = None,
        *,
        per_caller: int = PER_CALLER,
        total: int = MAX_CALLS,
    ) -> None:
        self._pipeline = pipeline
        self._spawn = spawn
        self._ttl = ttl
        self._board = board
        self._calls: dict[str, AsyncCall] = {}
        self._per_caller = per_caller
        self._total = total
        self._held: Counter[str] = Counter()
        """Calls in `_calls`, by holder."""

    def _room(self, holder: str) -> str | None:
        """Make room for one more call of `holder`: its oldest finished call goes if it needs one
        (returned, to be forgotten on the board too); 429 if all its calls run, 409 if the replica is full."""
        self._expire()
        evicted = None
        if self._held[holder] >= self._per_caller:
            ended = [(c.expires, k) for k, c in self._calls.items() if c.holder == holder and c.expires]
            if not ended:
                raise TooManyRequests(
                    f"you have {self._held[holder]} async calls running (at most {self._per_caller} per caller, "
                    "BASTION_FACADE_CALLS_PER_CALLER); wait for one to end",
                    retry_after=RETRY_AFTER,
                )
            evicted = min(ended)[1]
        if len(self._calls) - (evicted is not None) >= self._total:  # checked first: a refusal evicts nothing
            raise Conflict(f"too many calls are running (at most {self._total} on this replica); try again shortly")
        if evicted is not None:
            self._drop(evicted)
        return evicted

    def _drop(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            self._held[call.holder] -= 1
            if self._held[call.holder] <= 0:
                del self._held[call.holder]

    async def start(self, request: Request, ctx: CallContext, shape: Shape) -> Response:
        """Run `ctx` in the background; 202 with where to follow it (on every replica, with a board)
        once it passed every check and went upstream; a refusal before that is raised as it is."""
        holder = bound_holder(request.scope)
        evicted = self._room(holder)
        call_id = secrets.token_urlsafe(16)
        call = self._calls[call_id] = AsyncCall(owner=_owner(request), server=ctx.server, holder=holder)
        self._held[holder] += 1
        if evicted is not None and self._board is not None:
            try:
                await self._board.forget(evicted)
            except BastionError:
                pass  # its record expires on its own
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](1)
        call.answers = (send, receive)

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if len(call.progress) < MAX_PROGRESS:
                call.progress.append({"progress": progress, "total": total, "message": message})
            call.touch()
            await self._mirror(call_id, call, force=False)

        async def next_answer() -> dict[str, Any]:
            if self._board is None:
                return await receive.receive()
            while True:  # answered here, or at another replica (queued on the board)
                with anyio.move_on_after(POLL):
                    return await receive.receive()
                taken = await self._board.take_answer(call_id)
                if taken is not None:
                    return taken

        async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
            call.state, call.question = "input_required", {"method": method, "params": params}
            call.asks += 1
            call.touch()
            await self._mirror(call_id, call)
            try:
                with anyio.fail_after(self._ttl):
                    answer = await next_answer()
            except (TimeoutError, anyio.EndOfStream, anyio.ClosedResourceError):
                answer = {"code": -32603, "message": "the caller did not answer in time"}
            call.state, call.question = "running", None
            call.touch()
            await self._mirror(call_id, call)
            return answer

        settled = anyio.Event()
        refusal: list[BastionError] = []

        async def on_dispatch() -> None:
            if not call.admitted:
                await self._mirror(call_id, call)  # before the 202: its URL may reach another replica next
                call.admitted = True
                settled.set()

        ctx.hooks = CallHooks(on_progress=on_progress, ask=ask, on_dispatch=on_dispatch)
        # Questions are answered at the status URL: the call says so, as a client declares what it can
        # answer (an upstream asks only callers that declared it).
        ctx.params = with_capabilities(ctx.params, ANSWERABLE)

        async def run() -> None:
            async with anyio.create_task_group() as tg:
                if self._board is not None:
                    tg.start_soon(self._keep, call_id, call)
                try:
                    call.result, call.state = shape(await self._pipeline(ctx)), "completed"
                except BastionError as exc:
                    if not call.admitted:
                        refusal.append(exc)
                    extra = {k: v for k, v in exc.extra.items() if isinstance(v, str | int | float | bool | list)}
                    call.error = {"title": exc.title, "status": exc.http_status, "detail": exc.detail, **extra}
                    call.state = "failed"
                finally:
                    if call.state == "running":
                        call.state, call.error = "failed", {"title": "Internal error", "status": 500, "detail": "the call failed"}
                    call.expires = time.monotonic() + self._ttl
                    send.close()
                    call.touch()
                    settled.set()
                    tg.cancel_scope.cancel()
                    if call.admitted:
                        with anyio.CancelScope(shield=True):
                            await self._mirror(call_id, call, quiet=True)

        self._spawn(f"facade-call:{ctx.server}", run)
        with anyio.move_on_after(self._ttl):  # a run cancelled before it began (shutdown) never settles
            await settled.wait()
        if not settled.is_set():
            self._drop(call_id)
            raise ServiceUnavailable("the call could not be started; try again")
        if refusal:
            self._drop(call_id)  # refused before it ran: answered as such, nothing left behind
            raise refusal[0]
        if not call.admitted:  # answered without an upstream (or failed inside Bastion)
            try:
                await self._mirror(call_id, call)
            except BastionError:
                self._drop(call_id)
                raise
        url = f"/api/v1/servers/{ctx.server}/calls/{call_id}"
        body = {"id": call_id, "state": "running", "status_url": url, "events_url": f"{url}/events"}
        headers = {"Location": url, "Preference-Applied": "respond-async"}
        return JSONResponse(body, status_code=202, headers=headers)

    async def _mirror(self, call_id: str, call: AsyncCall, *, force: bool = True, quiet: bool = False) -> None:
        """Write the call's record to the board (a run of progress at most every MIRROR_EVERY)."""
        if self._board is None or (not force and time.monotonic() - call.mirrored_at < MIRROR_EVERY):
            return
        call.dirty, call.mirrored_at = False, time.monotonic()
        try:
            await self._board.put(call_id, call.record(), self._ttl + LEASE)
        except BastionError:
            if not quiet:
                raise

    async def _keep(self, call_id: str, call: AsyncCall) -> None:
        """While the call runs: write what a throttled mirror left out, and renew the lease."""
        while True:
            await anyio.sleep(MIRROR_EVERY)
            if call.admitted and (call.dirty or time.monotonic() - call.mirrored_at > LEASE / 3):
                await self._mirror(call_id, call, quiet=True)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, c in self._calls.items() if c.expires and c.expires < now]:
            self._drop(key)

    def _local(self, request: Request) -> AsyncCall | None:
        self._expire()
        call = self._calls.get(str(request.path_params["call"]))
        if call is None or call.owner != _owner(request) or call.server != request.path_params["name"]:
            return None
        return call

    async def _remote(self, request: Request) -> dict[str, Any]:
        """The call's board record when another replica runs it; NotFound as for a local call."""
        record = await self._board.get(str(request.path_params["call"])) if self._board is not None else None
        if record is None or record.get("owner") != _owner(request) or record.get("server") != request.path_params["name"]:
            raise NotFound("no such call (it may have ended and been forgotten)")
        return record

    async def status(self, request: Request) -> Response:
        call = self._local(request)
        return JSONResponse(call.view() if call is not None else remote_view(await self._remote(request)))

    async def answer(self, request: Request) -> Response:
        """The caller's answer to the question the call is waiting on (an MCP result object)."""
        call = self._local(request)
        record = await self._remote(request) if call is None else None
        view = call.view() if call is not None else remote_view(record or {})
        if view.get("state") != "input_required" or (call is not None and call.answers is None):
            raise Conflict("the call is not waiting for an answer")
        try:
            body = loads(await request.body())
        except ValueError:
            raise BadRequest("the answer must be a JSON object") from None
        if not isinstance(body, dict):
            raise BadRequest("the answer must be a JSON object (e.g. {\"action\": \"accept\", \"content\": {...}})")
        if call is not None and call.answers is not None:
            await call.answers[0].send(body)
        elif self._board is not None:
            await self._board.answer(str(request.path_params["call"]), body, self._ttl)
        return JSONResponse(view, status_code=202)

    async def events(self, request: Request) -> Response:
        call = self._local(request)
        if call is not None:
            changed: anyio.Event | None = None

            async def local_view() -> tuple[View, int] | None:
                nonlocal changed
                if changed is not None:
                    await changed.wait()
                changed = call.changed
                return call.view(), call.asks

            return StreamingResponse(_sse(local_view), media_type="text/event-stream")
        await self._remote(request)  # 404 before the stream starts
        call_id = str(request.path_params["call"])
        first = True

        async def board_view() -> tuple[View, int] | None:
            nonlocal first
            if not first:
                await anyio.sleep(POLL)
            first = False
            record = await self._board.get(call_id) if self._board is not None else None
            return None if record is None else (remote_view(record), int(record.get("asks") or 0))

        return StreamingResponse(_sse(board_view), media_type="text/event-stream")
