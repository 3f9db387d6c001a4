"""A caller's own 2025-11-25 session on a Streamable HTTP upstream, held by Bastion, not the SDK.

An idle caller's upstream session is a few small objects: its id, the negotiated version, the
caller's capabilities. No task, memory stream or open GET stream waits while it is idle (the SDK
`Client` cost ~94 KiB per idle session that way). Each request is one POST; its reply is JSON or
an SSE stream carrying, before the reply, the upstream's questions for that call (answered through
the caller's hooks and POSTed back), its progress and its logs, so everything on it is that
call's. A stream that ends early is resumed with `Last-Event-ID` (SEP-1699). Change notices and
resource updates reach the gateway through the shared session. An upstream may also ask outside
the call's stream (the SDK's `ctx.session.list_roots()` does, on the GET stream): so the GET stream
is open while calls are in flight, and for `_LINGER` seconds after, never while the session idles.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import aiohttp
import anyio
import anyio.abc
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from bastion import __version__
from bastion.core.errors import BastionError, UpstreamTimeout, UpstreamUnavailable
from bastion.core.models import UpstreamSpec
from bastion.core.ports import AskCallback, CallHooks
from bastion.tasks import TaskRunner
from bastion.upstream.guard import AddressGuard
from bastion.upstream.modern_http import ModernHttpClient, SseCursor, _jsonrpc_outcome, _relay, _sse_messages
from bastion.upstream.oauth import TokenSource

log = logging.getLogger("bastion.upstream")

_SESSION = "mcp-session-id"
_VERSION = "mcp-protocol-version"
_RESUMES = 2
"""Resumptions in a row that bring no new event before a call is given up (as the SDK's client)."""
_RESUME_DELAY_MS = 1000
_ASKS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
"""Questions an upstream may ask mid-call, and the capability the caller must have declared."""
_STOP_TIMEOUT = 5.0
_LINGER = 15.0
"""Seconds the GET stream stays open after the last call ends (so a burst of calls opens it once)."""
_GET_CONFLICTS = 5
"""A 409 to the GET: the upstream has not yet seen the previous GET stream close; tried again."""


_NO_CALL: Any = object()


class _Expired(Exception):
    """The upstream answered 404 to a request with this session's id: it forgot the session."""


class CallerHttpSession(ModernHttpClient):
    """One caller's 2025-11-25 session on one Streamable HTTP upstream; opened on its first call."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        spec: UpstreamSpec,
        *,
        runner: TaskRunner,
        caller_capabilities: dict[str, Any],
        connect_timeout: float,
        bearer: TokenSource | None = None,
        guard: AddressGuard | None = None,
        size_limits: tuple[int, int] | None = None,
    ) -> None:
        limits = {"max_message_bytes": size_limits[0], "max_result_bytes": size_limits[1]} if size_limits else {}
        super().__init__(
            http,
            upstream=spec.name,
            url=spec.url or "",
            headers=spec.headers,
            bearer=bearer,
            protocol_version=LATEST_HANDSHAKE_VERSION,
            client_info={"name": "bastion", "version": __version__},
            client_capabilities=caller_capabilities,
            **limits,
        )
        del self._headers[_VERSION]  # sent once negotiated
        self.spec = spec
        self.last_used = 0.0
        self._caps = caller_capabilities
        self._connect_timeout = connect_timeout
        self._guard = guard
        self._open = False
        self._opening = anyio.Lock()
        self._logging = False
        self._sent_log_level: str | None = None
        self._stopped = False
        self._runner = runner
        self._calls: dict[int, CallHooks | None] = {}
        self._listening: anyio.CancelScope | None = None
        """While the GET stream is open: the scope of the task reading it."""
        self._no_get = False
        """The upstream offers no GET stream (HTTP 405): nothing arrives outside calls' streams."""
        self._roots_asker: AskCallback | None = None
        """Once the caller said its roots changed: how to ask it for them outside any call."""

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Nothing runs while the session is idle: it opens on its first call (`wait_ready`)."""
        task_status.started()

    async def wait_ready(self, timeout: float) -> None:
        """Open the session (initialize, then initialized) unless it is open; UpstreamUnavailable if not."""
        if self._open:
            return
        async with self._opening:
            if self._open:
                return
            if self._stopped:
                raise UpstreamUnavailable(f"upstream {self._upstream!r}: this caller's session was closed")
            limit = min(timeout, self._connect_timeout)
            try:
                with anyio.fail_after(limit):
                    await self._handshake()
            except TimeoutError:
                reason = f"no MCP handshake within {limit:g} s"
            except BastionError as exc:
                reason = exc.detail
            except (aiohttp.ClientError, OSError) as exc:
                reason = f"connection failed ({type(exc).__name__})"
            else:
                return
            raise UpstreamUnavailable(f"upstream {self._upstream!r} is unavailable: {reason}")

    async def _handshake(self) -> None:
        if self._guard is not None:
            await self._guard.check(self.spec)  # every handshake: the name may resolve elsewhere now
        self._headers.pop(_SESSION, None)
        self._headers.pop(_VERSION, None)
        self._sent_log_level = None
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": self._caps,  # exactly what the caller declared: the upstream may ask only that
            "clientInfo": {"name": "bastion", "version": __version__},
        }
        result = await self._exchange("initialize", params, None)
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise UpstreamUnavailable(f"upstream {self._upstream!r} offered protocol version {version!r} in a handshake")
        self._headers[_VERSION] = version
        capabilities = result.get("capabilities")
        self._logging = isinstance(capabilities, dict) and isinstance(capabilities.get("logging"), dict)
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self._open = True

    async def request(
        self, method: str, params: dict[str, Any] | None, *, hooks: CallHooks | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Send one request on the caller's session and return the raw result; errors as BastionErrors."""
        try:
            with anyio.fail_after(timeout):
                try:
                    return await self._once(method, params, hooks, timeout)
                except _Expired:
                    self._open = False  # the upstream ran nothing: a new session (as the spec asks) runs it
                return await self._once(method, params, hooks, timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {self._upstream!r} did not answer {method} within {timeout:g} s") from None
        except _Expired:
            self._open = False
            raise UpstreamUnavailable(f"upstream {self._upstream!r} lost this caller's session during {method}") from None

    async def _once(
        self, method: str, params: dict[str, Any] | None, hooks: CallHooks | None, timeout: float
    ) -> dict[str, Any]:
        await self.wait_ready(timeout)
        if hooks is not None:
            await self._follow_log_level(hooks.log_level)
        return await self._exchange(method, params, hooks)

    async def _follow_log_level(self, level: str | None) -> None:
        """The session logs at the level the caller set (with setLevel), as it would directly."""
        if level is None or level == self._sent_log_level or not self._logging:
            return
        self._sent_log_level = level
        try:
            await self._exchange("logging/setLevel", {"level": level}, None)
        except BastionError as exc:  # the call goes on; Bastion still filters by the level
            log.info("upstream %s: logging/setLevel failed: %s", self._upstream, exc.detail)

    async def _exchange(self, method: str, params: dict[str, Any] | None, hooks: CallHooks | None) -> dict[str, Any]:
        request_id = next(self._ids)
        body_params = dict(params) if params else {}
        if hooks is not None and hooks.on_progress is not None:
            body_params["_meta"] = {**(body_params.get("_meta") or {}), "progressToken": request_id}
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if body_params or params is not None:
            message["params"] = body_params
        if method != "initialize":
            await self._listen_during_calls()
            self._calls[request_id] = hooks
            if self._listening is not None:
                self._listening.deadline = math.inf
        try:
            return await self._post(json.dumps(message).encode(), dict(self._headers), request_id, hooks)
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"upstream {self._upstream!r} failed during {method}: {type(exc).__name__}") from None
        except anyio.get_cancelled_exc_class():
            if method != "initialize":  # the caller cancelled, or the call timed out: tell the upstream
                cancelled = {"requestId": request_id, "reason": "the caller cancelled the request or it timed out"}
                with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_TIMEOUT):
                    await self._send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancelled})
            raise
        finally:
            if self._calls.pop(request_id, _NO_CALL) is not _NO_CALL and not self._calls and self._listening is not None:
                self._listening.deadline = anyio.current_time() + _LINGER

    async def roots_changed(self, ask: AskCallback) -> None:
        """The caller changed its roots: tell the upstream, with the GET stream open (for `_LINGER`
        seconds unless calls keep it) so that the `roots/list` it asks on it is put to the caller."""
        if not self._open or "roots" not in self._caps:
            return
        self._roots_asker = ask
        await self._listen_during_calls()
        if self._listening is not None and not self._calls:
            self._listening.deadline = anyio.current_time() + _LINGER
        await self._send({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})

    async def _listen_during_calls(self) -> None:
        """Open the GET stream (unless it is open) before a call is sent, so nothing the upstream
        sends on it during the call is lost."""
        if self._listening is not None or self._no_get:
            return
        async with self._opening:
            if self._listening is None and self._open and not self._no_get:
                # Bounded: an upstream that holds the GET's headers back must not hold this session's calls.
                with anyio.move_on_after(self._connect_timeout) as waited:
                    await self._runner.start(f"upstream:{self._upstream}:caller-get", self._listen)
                if waited.cancelled_caught:
                    self._no_get = True

    async def _listen(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        with anyio.CancelScope() as scope:
            try:
                headers = {**self._headers, "accept": "text/event-stream", **await self._authorization()}
                headers.pop("content-type", None)
                for _ in range(_GET_CONFLICTS):
                    async with self._http.get(self._url, headers=headers, allow_redirects=False) as response:
                        if response.status == 409:
                            await anyio.sleep(0.1)
                            continue
                        if response.status != 200 or not response.headers.get("content-type", "").startswith(
                            "text/event-stream"
                        ):
                            self._no_get = response.status == 405
                            break
                        self._listening = scope
                        task_status.started()
                        started = True
                        async with anyio.create_task_group() as tg:
                            messages = _sse_messages(
                                response, self._too_large, self._max_message, self._max_result,
                                upstream=self._upstream, skip_deep=True,
                            )
                            async for message in messages:
                                await self._unsolicited(message, tg)
                        break
            except Exception as exc:  # noqa: BLE001 - a lost GET stream must not end the gateway's task group
                log.info("upstream %s: a caller's GET stream ended: %s", self._upstream, type(exc).__name__)
            finally:
                if self._listening is scope:
                    self._listening = None
                if not started:
                    task_status.started()

    def _attributed(self) -> CallHooks | None:
        """The call something that names no call belongs to: the only call in flight, or any of them
        when they all answer on one client session (a 2025-11-25 caller's)."""
        calls = [h for h in self._calls.values() if h is not None]
        if len(calls) == 1 or (calls and calls[0].session is not None and all(h.session == calls[0].session for h in calls)):
            return calls[0]
        return None

    async def _unsolicited(self, message: dict[str, Any], tg: anyio.abc.TaskGroup) -> None:
        method, params = message.get("method"), message.get("params")
        if isinstance(method, str) and "id" in message:
            tg.start_soon(self._answer, message, self._attributed())  # a question may wait for its answer
        elif method == "notifications/progress" and isinstance(params, dict):
            token = params.get("progressToken")
            hooks = self._calls.get(token) if isinstance(token, int) else None
            if isinstance(token, int) and hooks is not None:
                await _relay(message, token, hooks)
        elif method == "notifications/message" and (hooks := self._attributed()) is not None:
            await _relay(message, 0, hooks)

    async def _read_reply(
        self, response: aiohttp.ClientResponse, request_id: int, hooks: CallHooks | None
    ) -> dict[str, Any]:
        if response.status == 404 and _SESSION in self._headers:
            raise _Expired
        if not self._open and (session_id := response.headers.get(_SESSION)):
            self._headers[_SESSION] = session_id
        if response.status >= 400 or not response.headers.get("content-type", "").startswith("text/event-stream"):
            return await super()._read_reply(response, request_id, hooks)
        cursor = SseCursor()
        outcome = await self._events(response, request_id, hooks, cursor)
        misses = 0
        while outcome is None:
            # SEP-1699: the upstream closed the call's stream early; resume it where it ended.
            if cursor.last_id is None or misses >= _RESUMES:
                raise UpstreamUnavailable(f"upstream {self._upstream!r} closed the stream before replying")
            seen = cursor.last_id
            await anyio.sleep((cursor.retry_ms if cursor.retry_ms is not None else _RESUME_DELAY_MS) / 1000)
            outcome = await self._resume(request_id, hooks, cursor)
            misses = 0 if cursor.last_id != seen else misses + 1
        return outcome

    async def _resume(self, request_id: int, hooks: CallHooks | None, cursor: SseCursor) -> dict[str, Any] | None:
        headers = {**self._headers, "last-event-id": cursor.last_id or "", **await self._authorization()}
        headers.pop("content-type", None)
        try:
            async with self._http.get(self._url, headers=headers, allow_redirects=False) as response:
                if response.status == 404:
                    # Not _Expired: the upstream accepted this call and may have run it, so it must
                    # not run again on a new session. The next call opens one.
                    self._open = False
                    raise UpstreamUnavailable(f"upstream {self._upstream!r} lost this caller's session during a call it had begun")
                if response.status >= 400 or not response.headers.get("content-type", "").startswith("text/event-stream"):
                    return None
                return await self._events(response, request_id, hooks, cursor)
        except aiohttp.ClientError:
            return None

    async def _events(
        self, response: aiohttp.ClientResponse, request_id: int, hooks: CallHooks | None, cursor: SseCursor
    ) -> dict[str, Any] | None:
        """The call's reply from its stream, relaying what comes before it; None if the stream ends first."""
        async for message in _sse_messages(
            response, self._too_large, self._max_message, self._max_result, cursor, upstream=self._upstream
        ):
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return _jsonrpc_outcome(message, self._upstream)
            if isinstance(message.get("method"), str) and "id" in message:
                await self._answer(message, hooks)
            elif hooks is not None:
                await _relay(message, request_id, hooks)
        return None

    async def _answer(self, message: dict[str, Any], hooks: CallHooks | None) -> None:
        """Answer a question the upstream asked during this call: the caller answers it, or an error."""
        method, params = message["method"], message.get("params")
        capability = _ASKS.get(method)
        reply: dict[str, Any]
        ask = hooks.ask if hooks is not None else None
        if ask is None and method == "roots/list":
            ask = self._roots_asker  # asked again after the caller's notice: only roots, only its own caller
        if method == "ping":
            reply = {"result": {}}
        elif capability is None or capability not in self._caps:
            reply = {"error": {"code": -32601, "message": f"the client did not declare {method}"}}
        elif ask is None:
            reply = {"error": {"code": -32603, "message": f"Bastion cannot route this {method}: no caller is waiting for it"}}
        else:
            try:
                answer = await ask(method, params if isinstance(params, dict) else {})
            except BastionError as exc:
                answer = {"code": -32603, "message": exc.detail}
            except Exception as exc:  # noqa: BLE001 - the upstream waits for an answer: it gets an error
                answer = {"code": -32603, "message": f"the caller could not be asked ({type(exc).__name__})"}
            is_error = "code" in answer and set(answer) <= {"code", "message", "data"}
            reply = {"error": answer} if is_error else {"result": answer}
        await self._send({"jsonrpc": "2.0", "id": message["id"], **reply})

    async def _authorization(self) -> dict[str, str]:
        token = await self._bearer.token() if self._bearer is not None else None
        return {"authorization": f"Bearer {token}"} if token is not None else {}

    async def _send(self, message: dict[str, Any]) -> None:
        """POST a notification or an answer (the upstream replies 202, no body)."""
        headers = {**self._headers, **await self._authorization()}
        try:
            async with self._http.post(self._url, data=json.dumps(message).encode(), headers=headers, allow_redirects=False) as response:
                if response.status >= 400:
                    log.info("upstream %s refused a %s (HTTP %s)", self._upstream, message.get("method", "reply"), response.status)
        except aiohttp.ClientError as exc:
            log.info("upstream %s: sending a %s failed: %s", self._upstream, message.get("method", "reply"), type(exc).__name__)

    async def stop(self) -> None:
        """End the session upstream (DELETE), as a client that is done with it does."""
        self._stopped = True
        if self._listening is not None:
            self._listening.cancel()
        if not self._open or _SESSION not in self._headers:
            return
        self._open = False
        headers = {key: value for key, value in self._headers.items() if key not in ("content-type", "accept")}
        with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_TIMEOUT):
            try:
                headers.update(await self._authorization())
                async with self._http.delete(self._url, headers=headers, allow_redirects=False):
                    pass
            except (aiohttp.ClientError, OSError, BastionError) as exc:
                log.info("upstream %s: closing a caller's session failed: %s", self._upstream, type(exc).__name__)
