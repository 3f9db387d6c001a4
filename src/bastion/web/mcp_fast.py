"""The fast path for plain requests: parse once, run the pipeline, answer one JSON body.

The SDK's server spends most of a proxied call's CPU on per-message machinery (a dispatch
context, memory streams, a task, model validation of the request and of the result, and on a
2025-11-25 session an SSE stream per POST). This serves the plain case itself:

- 2026-07-28: a request with a clean envelope (no Mcp-Param-* headers, nothing the SDK's
  envelope ladder would reject);
- 2025-11-25: a request on a session the SDK opened and initialized, from the caller that owns it;

in both eras without a progress or log opt-in (those need a stream). Everything else goes to the
SDK unchanged, with the body replayed, so the SDK stays the one authority on the protocol's edge
cases and their exact errors. Answering a request POST with `application/json` is allowed in
both eras.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.streamable_http import EventStore
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp_types import RequestId
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import Message, Receive, Scope, Send

from bastion.core.errors import BastionError
from bastion.core.list_pages import EncodedPage
from bastion.core.ports import AskCallback, CallHooks
from bastion.pipeline.base import Next
from bastion.pipeline.context import CallContext, Principal
from bastion.pipeline.route import LIST_METHODS, SERVED_METHODS
from bastion.pipeline.tracing import trace_headers
from bastion.web.body import TOO_LARGE, read_body, send_json
from bastion.web.bridge import with_capabilities
from bastion.web.fast_stream import CallStream
from bastion.web.json_depth import MAX_DEPTH, LoneSurrogate, body_too_deep, loads
from bastion.web.scope import credential_of, principal_of
from bastion.web.session_link import RequestIds
from bastion.web.session_manager import mcp_headers

log = logging.getLogger("bastion.mcp")

# Lists and reads are not promised fresh for any time (upstreams change them without notice), and
# are kept private to the caller's authorization context. The SDK path applies the same hints.
CACHE_HINTED_METHODS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"})
# Result fields that exist only from 2026-07-28 on; a 2025-11-25 client is not sent them.
_MODERN_ONLY_FIELDS = ("resultType", "ttlMs", "cacheScope")
_OPT_INS = ("progressToken", "io.modelcontextprotocol/logLevel")
_CANCELLED = "notifications/cancelled"

Fallback = Callable[[Receive], Awaitable[None]]
ErrorMapper = Callable[[BastionError], tuple[int, str, Any]]


@dataclass
class LegacySession:
    """What the fast path needs of a 2025-11-25 session that the SDK opened."""

    session_id: str
    protocol_version: str
    principal: str | None
    hold: Callable[[], AbstractContextManager[None]]
    """Keeps the SDK from reaping the session as idle while a fast-path call runs."""
    wants_logs: Callable[[], bool]
    """Whether the client set a log level: its calls then need a stream, so the SDK path."""
    capabilities: dict[str, Any] | None
    """What the client declared at `initialize`; travels upstream with each call."""
    ask: AskCallback
    """Puts an upstream's input request to the client, on the session's standalone stream."""
    key: str
    """The session's opaque key (web.relay.session_key), for the caller's own upstream session."""
    events: Callable[[], EventStore | None] = lambda: None
    """The session's event store, where a streamed answer keeps its events for a resume."""
    inflight: dict[RequestId, anyio.CancelScope] = field(default_factory=dict)
    streams: dict[str, CallStream] = field(default_factory=dict)
    """The answers streaming now (web/fast_stream.py), by SSE stream id: what a GET may resume here."""
    requests: Callable[[], RequestIds | None] = lambda: None
    """The ids of the client's requests in flight on the session, on either path (web/session_link.py)."""


SessionLookup = Callable[[str], LegacySession | None]


def replayed(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class Posted:
    """A POSTed body and its JSON, decoded at most once for everything that looks at it (the fast
    path's checks, the duplicate-id claim, the id check before the SDK)."""

    __slots__ = ("body", "_error", "_json", "_read")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._read = False
        self._json: Any = None
        self._error: ValueError | None = None

    def json(self) -> Any:
        """The body's JSON (`loads`); its ValueError, raised again on every later look."""
        if not self._read:
            self._read = True
            try:
                self._json = loads(self.body)
            except ValueError as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._json

    def message(self) -> dict[str, Any] | None:
        """The body as a JSON-RPC message, None if it is not one."""
        try:
            message = self.json()
        except ValueError:
            return None
        return message if isinstance(message, dict) and message.get("jsonrpc") == "2.0" else None


def _decode(body: bytes) -> dict[str, Any] | None:
    return Posted(body).message()


def _plain_call(message: dict[str, Any], *, params_required: bool) -> bool:
    """A request for a method the pipeline serves, with no opt-in that needs a stream."""
    if message.get("method") not in SERVED_METHODS:
        return False
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return False
    params = message.setdefault("params", None if params_required else {})
    if not isinstance(params, dict):
        return False
    meta = params.get("_meta") or {}
    return isinstance(meta, dict) and not any(key in meta for key in _OPT_INS)


def _accepts_both(headers: dict[str, str]) -> bool:
    accept = headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" in accept


def _modern_request(
    raw_headers: list[tuple[str, str]], headers: dict[str, str], posted: Posted, mirrored: Callable[[str], bool]
) -> dict[str, Any] | None:
    if not _accepts_both(headers) or any(name.startswith("mcp-param-") for name, _ in raw_headers):
        return None
    message = posted.message()
    if message is None or not _plain_call(message, params_required=True):
        return None
    if message["method"] == "tools/call" and mirrored(str(message["params"].get("name"))):
        return None  # its Mcp-Param-* headers (or their absence) are the SDK's to check
    if find_duplicated_routing_header(raw_headers) is not None:
        return None
    if not hasattr(classify_inbound_request(message, headers=headers), "protocol_version"):
        return None  # a ladder rejection: the SDK writes it
    return message


def _owned(headers: dict[str, str], session: LegacySession, principal: Principal | None) -> bool:
    """A request of the session's owner, in its protocol version (else the SDK path decides what to say)."""
    return headers.get("mcp-protocol-version") == session.protocol_version and (
        principal.id if principal else None
    ) == session.principal


def _legacy_request(
    headers: dict[str, str], posted: Posted, session: LegacySession, principal: Principal | None
) -> dict[str, Any] | None:
    if not _owned(headers, session, principal) or not _accepts_both(headers) or session.wants_logs():
        return None  # someone else's, or logs to stream from the start: the SDK path
    if not headers.get("content-type", "").startswith("application/json"):
        return None
    message = posted.message()
    if message is None:
        return None
    if message.get("method") == _CANCELLED:
        # Our in-flight calls are invisible to the SDK: cancel ours, and let it acknowledge.
        params = message.get("params")
        target = params.get("requestId") if isinstance(params, dict) else None
        scope = session.inflight.get(target) if isinstance(target, str | int) else None
        if scope is not None:
            scope.cancel()
        return None
    return message if _plain_call(message, params_required=False) else None


def request_id_of(posted: Posted) -> RequestId | None:
    """The id of the request `posted`, None if it is not one."""
    message = posted.message()
    if message is None or not isinstance(message.get("method"), str):
        return None
    request_id = message.get("id")
    return request_id if not isinstance(request_id, bool) and isinstance(request_id, str | int) else None


def _claimed(
    posted: Posted, session: LegacySession, principal: Principal | None
) -> tuple[RequestIds | None, RequestId | None, bool]:
    """Hold the id of the owner's request on its session while it is served, on either path: (the
    session's ids, the id held, whether the request may go on). Whatever handshake-era version its
    header names (or none: the SDK serves those too); not another caller's, which is answered as
    for a session that does not exist."""
    owner = (principal.id if principal else None) == session.principal
    requests = session.requests() if owner else None
    request_id = request_id_of(posted) if requests is not None else None
    if requests is None or request_id is None:
        return None, None, True
    return requests, request_id, requests.claim(request_id)


async def refuse_duplicate(send: Send, request_id: RequestId) -> None:
    """A request whose id is one still in flight on its session: refused, or the SDK would send the
    first request's answer (and progress) on its stream and leave the first one's open for good.
    The error names no id: a client would take it for the first request's answer."""
    error = {"code": -32600, "message": f"Invalid Request: request id {json.dumps(request_id)} is already in flight on this session"}
    await _respond(send, 400, {"jsonrpc": "2.0", "id": None, "error": error}, [])


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_FIELDS: dict[tuple[str, type, object], bytes] = {}
_FIELDS_KEPT = 4096


def _field(key: str, value: Any) -> bytes:
    """`"key":value`, encoded once for the scalar fields beside a list page (cache hints, cursors)."""
    if not isinstance(value, str | int | float | None):
        return _compact(key) + b":" + _compact(value)
    memo = (key, type(value), value)  # the type keeps 1, 1.0 and True apart
    found = _FIELDS.get(memo)
    if found is None:
        if len(_FIELDS) >= _FIELDS_KEPT:
            _FIELDS.clear()
        found = _FIELDS[memo] = _compact(key) + b":" + _compact(value)
    return found


def encode_reply(payload: dict[str, Any]) -> bytes:
    """The JSON body of a reply; a list page already encoded (core/list_pages.py) is spliced in as is,
    with its neighbours, in one join: the page's bytes are copied once, into the body."""
    result = payload.get("result")
    if not isinstance(result, dict) or not any(isinstance(v, EncodedPage) for v in result.values()):
        return _compact(payload)
    parts = [_compact({k: v for k, v in payload.items() if k != "result"})[:-1], b',"result":{']
    for key, value in result.items():
        if isinstance(value, EncodedPage):
            parts += (_compact(key), b":", value.encoded, b",")
        else:
            parts += (_field(key, value), b",")
    parts[-1] = b"}}"
    return b"".join(parts)


async def _respond(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    await send_json(send, status, encode_reply(payload), headers)


async def guarded_body(receive: Receive, send: Send, max_body: int) -> bytes | None:
    """A POSTed MCP message's body, or None when there is nothing to serve: the client went away, or
    the body is larger than `max_body` (413) or nests deeper than MAX_DEPTH (400), answered here with
    a JSON-RPC error before anything parses it."""
    body = await read_body(receive, max_body)
    if body is None:
        return None  # the client went away mid-request
    if body is TOO_LARGE:
        error = {"code": -32600, "message": f"request body is larger than {max_body} bytes"}
        await _respond(send, 413, {"jsonrpc": "2.0", "id": None, "error": error}, [])
        return None
    if body_too_deep(body):
        error = {"code": -32600, "message": f"the request nests deeper than {MAX_DEPTH} levels"}
        await _respond(send, 400, {"jsonrpc": "2.0", "id": None, "error": error}, [])
        return None
    return body


async def refused_request_id(posted: Posted, send: Send) -> bool:
    """Answer 400 -32600 to a request (it names a method) whose `id` is there but is not a string or
    an integer, and say whether it did. The SDK reads such a message as a notification and never
    answers it, so the client would wait forever. A lone surrogate is answered 400 -32700 here too:
    the SDK's 2026-07-28 path parses with `json.loads`, which keeps it. Only for bodies bound for
    the SDK: it parses."""
    try:
        message = posted.json()
    except LoneSurrogate as exc:
        error = {"code": -32700, "message": f"Parse error: invalid JSON: {exc.msg}"}
        await _respond(send, 400, {"jsonrpc": "2.0", "id": None, "error": error}, [])
        return True
    except ValueError:
        return False
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return False
    request_id = message["id"]
    if not isinstance(request_id, bool) and isinstance(request_id, str | int):
        return False
    error = {"code": -32600, "message": "a request's id must be a string or an integer"}
    await _respond(send, 400, {"jsonrpc": "2.0", "id": None, "error": error}, [])
    return True


async def serve_fast(
    server: str,
    pipeline: Next,
    to_error: ErrorMapper,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    max_body: int,
    fallback: Fallback,
    sessions: SessionLookup,
    mirrored: Callable[[str], bool],
) -> None:
    """Serve one POST: on the fast path when plain, else through `fallback` with the body replayed."""
    body = await guarded_body(receive, send, max_body)
    if body is None:
        return
    posted = Posted(body)
    raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    headers = dict(raw_headers)
    principal = principal_of(scope)
    session: LegacySession | None = None
    requests, request_id = None, None  # the id held in flight on the session while this is served
    version, session_id = mcp_headers(scope)
    if version in MODERN_PROTOCOL_VERSIONS:
        message = _modern_request(raw_headers, headers, posted, mirrored)
    elif session_id and (session := sessions(session_id)) is not None:
        message = _legacy_request(headers, posted, session, principal)
        requests, request_id, admitted = _claimed(posted, session, principal)
        if not admitted:
            assert request_id is not None
            await refuse_duplicate(send, request_id)
            return
    else:
        message = None
    try:
        await _serve(server, pipeline, to_error, (scope, receive, send), headers, posted, message, session, fallback)
    finally:
        if requests is not None and request_id is not None:
            requests.release(request_id)


async def _serve(
    server: str,
    pipeline: Next,
    to_error: ErrorMapper,
    asgi: tuple[Scope, Receive, Send],
    headers: dict[str, str],
    posted: Posted,
    message: dict[str, Any] | None,
    session: LegacySession | None,
    fallback: Fallback,
) -> None:
    """Serve one POST's `message` (None: not a plain call) on the fast path, or through `fallback`."""
    scope, receive, send = asgi
    if message is None:
        if not await refused_request_id(posted, send):
            await fallback(replayed(posted.body, receive))
        return
    client = scope.get("client")
    address, traced = (str(client[0]) if client else None), trace_headers(headers)
    if session is None:
        call = CallContext(
            server=server,
            method=message["method"],
            params=message["params"],
            credential=credential_of(scope),
            address=address,
            trace_headers=traced,
        )
        outcome = await _run(call, pipeline, to_error, receive, None, None)
        await _answer(send, message["id"], call.method, outcome, modern=True, extra_headers=[])
        return
    session_header = [(b"mcp-session-id", session.session_id.encode())]
    stream = CallStream(
        send,
        session_header,
        stream_id=str(message["id"]),
        protocol_version=session.protocol_version,
        events=session.events,
        live=session.streams,
    )
    params = with_capabilities(message["params"], session.capabilities)
    hooks = CallHooks(ask=session.ask, on_log=stream.log, session=session.key, legacy=True)
    call = CallContext(
        server=server,
        method=message["method"],
        params=params,
        credential=credential_of(scope),
        hooks=hooks,
        address=address,
        trace_headers=traced,
    )
    with session.hold():
        outcome = await _run(call, pipeline, to_error, receive, (session, message["id"]), stream)
    await _answer(stream.send, message["id"], call.method, outcome, modern=False, extra_headers=session_header)
    await stream.close()


async def serve_resume(scope: Scope, receive: Receive, send: Send, sessions: SessionLookup) -> bool:
    """Serve a GET with Last-Event-ID that resumes an answer streaming here; False leaves it to the SDK."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    last_event_id, session_id = headers.get("last-event-id"), mcp_headers(scope)[1]
    if not last_event_id or not session_id or "text/event-stream" not in headers.get("accept", ""):
        return False
    session = sessions(session_id)
    if session is None or not _owned(headers, session, principal_of(scope)):
        return False
    stream = session.streams.get(last_event_id.rpartition("/")[0])
    if stream is None:
        return False
    with session.hold():
        await stream.resume(last_event_id, receive, send)
    return True


async def _run(
    call: CallContext,
    pipeline: Next,
    to_error: ErrorMapper,
    receive: Receive,
    tracked: tuple[LegacySession, RequestId] | None,
    stream: CallStream | None,
) -> dict[str, Any]:
    """Run the call; a client that disconnects (or, on a session, cancels) cancels it upstream too,
    unless its answer is a stream it can resume."""
    outcome: dict[str, Any] = {}
    if call.method in LIST_METHODS:
        # Answered from the snapshot, with nothing upstream to cancel: no watcher task (its spawn
        # and cancellation were a sixth of a list page's CPU). A client gone meanwhile is answered
        # into the void, as the server drops writes to a closed connection.
        await _guarded(call, pipeline, to_error, outcome)
        return outcome

    with anyio.CancelScope() as cancel:
        watch = DisconnectWatch(receive, cancel, stream)
        if tracked is not None:
            tracked[0].inflight[tracked[1]] = cancel
        try:
            await _guarded(call, pipeline, to_error, outcome)
        finally:
            watch.stop()
            if tracked is not None:
                tracked[0].inflight.pop(tracked[1], None)
    return outcome


class DisconnectWatch:
    """Cancels a call whose client went away (or detaches its resumable stream), watching only once
    the call has run for WATCH_AFTER seconds.

    A watcher task per call, cancelled when the call ended, cost a task and a CancelledError whose
    traceback and frames are reference cycles: some 50 objects a call that only the cyclic garbage
    collector frees, the largest part of the gateway's collections. Most calls end before the
    timer fires and never start the task; a client that leaves sooner is noticed when it fires
    (uvicorn answers the pending receive at once once the connection is gone)."""

    WATCH_AFTER = 0.05

    def __init__(self, receive: Receive, cancel: anyio.CancelScope, stream: CallStream | None) -> None:
        self._receive, self._cancel, self._stream = receive, cancel, stream
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(self.WATCH_AFTER, self._start)

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if self._stream is not None and self._stream.resumable:
            self._stream.detach()
        else:
            self._cancel.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()


async def _guarded(call: CallContext, pipeline: Next, to_error: ErrorMapper, outcome: dict[str, Any]) -> None:
    """Run the pipeline; its result, or the error it raised as a JSON-RPC error, goes into `outcome`."""
    try:
        outcome["result"] = await pipeline(call)
    except BastionError as exc:
        outcome["error"] = to_error(exc)
    except Exception:
        log.exception("%s on %s failed", call.method, call.server)
        outcome["error"] = (-32603, "Internal error", None)


async def _answer(
    send: Send,
    request_id: RequestId,
    method: str,
    outcome: dict[str, Any],
    *,
    modern: bool,
    extra_headers: list[tuple[bytes, bytes]],
) -> None:
    if "result" in outcome:
        result = outcome["result"]
        if not modern:
            result = {k: v for k, v in result.items() if k not in _MODERN_ONLY_FIELDS}
        else:
            if method in CACHE_HINTED_METHODS:
                result = {"ttlMs": 0, "cacheScope": "private", **result}
            if "resultType" not in result:
                result = {**result, "resultType": "complete"}
        await _respond(send, 200, {"jsonrpc": "2.0", "id": request_id, "result": result}, extra_headers)
    elif "error" in outcome:
        code, message, data = outcome["error"]
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        # A session's JSON-RPC errors travel with 200, as on the SDK's session path.
        status = ERROR_CODE_HTTP_STATUS.get(code, 200) if modern else 200
        await _respond(send, status, {"jsonrpc": "2.0", "id": request_id, "error": error}, extra_headers)
    # else: the client went away; there is no one to answer.
