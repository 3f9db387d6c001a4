"""Long facade calls (`Prefer: respond-async`): 202 with a status URL, progress readable there and
as Server-Sent Events, and a question the tool asks mid-call surfaced there with a way to answer.

A call runs through the same pipeline in the background and belongs to the caller who started
it: anyone else gets 404 for its URLs. Calls live in this process (a status URL must reach the
same replica) and are forgotten `ttl` seconds after they end, or after a question goes unanswered.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from bastion.core.errors import BadRequest, BastionError, Conflict, NotFound
from bastion.core.ports import CallHooks
from bastion.pipeline.base import Next
from bastion.pipeline.context import CallContext, Principal
from bastion.web.bridge import with_capabilities
from bastion.web.json_depth import loads
from bastion.web.scope import PRINCIPAL_SCOPE_KEY

Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]
Shape = Callable[[dict[str, Any]], dict[str, Any]]
MAX_CALLS = 10_000
MAX_PROGRESS = 1000

ANSWERABLE: dict[str, Any] = {"elicitation": {}, "sampling": {}}
"""What an async call can answer at its status URL: elicitation and sampling questions."""


@dataclass
class AsyncCall:
    owner: str
    server: str
    state: str = "running"
    progress: list[dict[str, Any]] = field(default_factory=list)
    question: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    expires: float = 0.0
    changed: anyio.Event = field(default_factory=anyio.Event)
    answers: tuple[Any, Any] | None = None

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "progress": self.progress}
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


def _owner(request: Request) -> str:
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return principal.id if isinstance(principal, Principal) else ""


class AsyncCalls:
    def __init__(self, pipeline: Next, spawn: Spawn, ttl: float) -> None:
        self._pipeline = pipeline
        self._spawn = spawn
        self._ttl = ttl
        self._calls: dict[str, AsyncCall] = {}

    def start(self, request: Request, ctx: CallContext, shape: Shape) -> Response:
        """Run `ctx` in the background; 202 with where to follow it."""
        self._expire()
        if len(self._calls) >= MAX_CALLS:
            raise Conflict("too many calls are running; try again shortly")
        call_id = secrets.token_urlsafe(16)
        call = self._calls[call_id] = AsyncCall(owner=_owner(request), server=ctx.server)
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](1)
        call.answers = (send, receive)

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if len(call.progress) < MAX_PROGRESS:
                call.progress.append({"progress": progress, "total": total, "message": message})
            call.touch()

        async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
            call.state, call.question = "input_required", {"method": method, "params": params}
            call.touch()
            try:
                with anyio.fail_after(self._ttl):
                    answer = await receive.receive()
            except (TimeoutError, anyio.EndOfStream, anyio.ClosedResourceError):
                answer = {"code": -32603, "message": "the caller did not answer in time"}
            call.state, call.question = "running", None
            call.touch()
            return answer

        ctx.hooks = CallHooks(on_progress=on_progress, ask=ask)
        # Questions are answered at the status URL: the call says so, as a client declares what it can
        # answer (an upstream asks only callers that declared it).
        ctx.params = with_capabilities(ctx.params, ANSWERABLE)

        async def run() -> None:
            try:
                call.result, call.state = shape(await self._pipeline(ctx)), "completed"
            except BastionError as exc:
                extra = {k: v for k, v in exc.extra.items() if isinstance(v, str | int | float | bool | list)}
                call.error = {"title": exc.title, "status": exc.http_status, "detail": exc.detail, **extra}
                call.state = "failed"
            finally:
                if call.state == "running":
                    call.state, call.error = "failed", {"title": "Internal error", "status": 500, "detail": "the call failed"}
                call.expires = time.monotonic() + self._ttl
                send.close()
                call.touch()

        self._spawn(f"facade-call:{ctx.server}", run)
        url = f"/api/v1/servers/{ctx.server}/calls/{call_id}"
        body = {"id": call_id, "state": "running", "status_url": url, "events_url": f"{url}/events"}
        headers = {"Location": url, "Preference-Applied": "respond-async"}
        return JSONResponse(body, status_code=202, headers=headers)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, c in self._calls.items() if c.expires and c.expires < now]:
            del self._calls[key]

    def _owned(self, request: Request) -> AsyncCall:
        self._expire()
        call = self._calls.get(str(request.path_params["call"]))
        if call is None or call.owner != _owner(request) or call.server != request.path_params["name"]:
            raise NotFound("no such call (it may have ended and been forgotten)")
        return call

    async def status(self, request: Request) -> Response:
        return JSONResponse(self._owned(request).view())

    async def answer(self, request: Request) -> Response:
        """The caller's answer to the question the call is waiting on (an MCP result object)."""
        call = self._owned(request)
        if call.state != "input_required" or call.answers is None:
            raise Conflict("the call is not waiting for an answer")
        try:
            body = loads(await request.body())
        except ValueError:
            raise BadRequest("the answer must be a JSON object") from None
        if not isinstance(body, dict):
            raise BadRequest("the answer must be a JSON object (e.g. {\"action\": \"accept\", \"content\": {...}})")
        await call.answers[0].send(body)
        return JSONResponse(call.view(), status_code=202)

    async def events(self, request: Request) -> Response:
        call = self._owned(request)

        async def stream() -> AsyncIterator[str]:
            sent = 0
            asked: dict[str, Any] | None = None
            while True:
                changed = call.changed
                for item in call.progress[sent:]:
                    yield f"event: progress\ndata: {json.dumps(item)}\n\n"
                sent = len(call.progress)
                if call.state == "input_required" and call.question is not None and call.question is not asked:
                    asked = call.question
                    yield f"event: input_required\ndata: {json.dumps(call.question)}\n\n"
                if call.state in ("completed", "failed"):
                    yield f"event: {'result' if call.result is not None else 'error'}\ndata: {json.dumps(call.view())}\n\n"
                    return
                await changed.wait()

        return StreamingResponse(stream(), media_type="text/event-stream")
