"""httpx2 clients that connect only where the SSRF rules allow, and read bounded answers.

A network backend resolves each connection's host once, checks every address (rules.py) and
connects to a checked address; TLS still verifies the URL's host name (httpcore passes it as SNI and
for the certificate check), and the Host header is the URL's. Response bodies can be capped: one
JSON body, or one server-sent event, at most `max_message` bytes, and everything one POST's event
stream carries at most `max_result` bytes. A cap is raised as the httpx2 error the MCP SDK's
transports already turn into a JSON-RPC error for the request, with a text Bastion recognises.
A capped answer is also passed on a whole body, or whole events, at a time, so that a message
spelling NaN or an infinity (the SDK's parser reads them; no caller's JSON can carry them on) is
passed on as an error answer to its request, with a text Bastion recognises, or dropped.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import anyio
import httpcore2
import httpx2

from bastion.core.netguard import AddressRefused
from bastion.core.surrogates import UnfitNumber, finite_loads, unfit_detail
from bastion.core.values import small_int
from bastion.outbound.rules import Resolve, Rules

TOO_LARGE = "message larger than Bastion's limit"
"""Marks the text of a size refusal, which reaches the upstream connection inside an SDK error."""


def too_large(limit: int, setting: str) -> str:
    return f"{TOO_LARGE} of {limit} bytes ({setting})"


class _Backend(httpcore2.AsyncNetworkBackend):
    def __init__(self, rules: Rules, resolve: Resolve) -> None:
        self._rules = rules
        self._resolve = resolve
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await self._rules.addresses(host, port, self._resolve)
        except AddressRefused as exc:
            raise httpcore2.ConnectError(exc.detail) from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("Bastion makes no outbound requests over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class JsonTooLarge(httpx2.StreamError):
    """A body over the message cap (the SDK reports a StreamError on a JSON reply as a parse error)."""


class EventTooLarge(httpx2.SSEError):
    """An event or event stream over its cap (the SDK reports an SSEError as a failed stream)."""


class JsonUnfit(httpx2.StreamError):
    """A JSON body spelling NaN or an infinity that answers no request (the SDK reports a
    StreamError on a JSON reply as a parse error for the request it sent)."""


_CARRY = len(b"Infinity") - 1
"""How much of a chunk's end is kept to find a name cut between two chunks."""
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\n\r\n|\r\n\n|\n\r\r")


def _names_unfit(seen: bytes) -> bool:
    """Whether `seen` may spell NaN or an infinity (two searches at memchr speed; a string may hold the names too)."""
    return b"NaN" in seen or b"Infinity" in seen


def _refused(text: bytes) -> bytes | None:
    """One JSON-RPC message as passed on: None when it spells no NaN or infinity, or is no JSON-RPC
    message (as it is), b"" when it does and is no answer (dropped), else an error answer to the
    request it answered."""
    try:
        finite_loads(text)
        return None
    except UnfitNumber as exc:
        detail = unfit_detail("the upstream", exc.constant)
    except (ValueError, RecursionError):
        return None  # not JSON, or nested too deep: the SDK's parser and Bastion's tap say so
    message = json.loads(text)  # the names read as floats: only its id and kind are looked at
    if not isinstance(message, dict) or "jsonrpc" not in message:
        return None  # not JSON-RPC (a registry listing, a REST API's answer): its reader judges it
    if not ("result" in message or "error" in message):
        return b""
    answered = message.get("id")
    if not isinstance(answered, int | str) or isinstance(answered, bool):
        return b""
    error = {"jsonrpc": "2.0", "id": answered, "error": {"code": -32603, "message": detail}}
    return json.dumps(error).encode()


def _events_refused(events: bytes) -> bytes:
    """Whole SSE events, each whose data spells NaN or an infinity rewritten as `_refused` says."""
    out: list[bytes] = []
    for event in _EVENT_END.split(events):
        lines = event.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        replaced = _refused(b"\n".join(data)) if data else None
        if replaced is None:
            out.append(event)
            continue
        kept = [line for line in lines if not line.startswith(b"data:")]
        out.append(b"\n".join([*kept, b"data: " + replaced] if replaced else kept or [b": refused"]))
    return b"\n\n".join(out)


@dataclass(frozen=True)
class Caps:
    max_message: int
    max_result: int


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(
        self, inner: httpx2.AsyncByteStream, caps: Caps, *, events: bool, answer: bool, declared: int | None
    ) -> None:
        self._inner = inner
        self._caps = caps
        self._events = events
        self._answer = answer  # a POST's event stream is one request's answer; a GET stream is not
        self._declared = declared

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if not self._events and self._declared is not None and self._declared > self._caps.max_message:
            # Refused on the first read, not when the response arrives: the SDK reports errors of
            # reading a body to the request, while one raised by `send` would end its session.
            raise JsonTooLarge(too_large(self._caps.max_message, "BASTION_UPSTREAM_MAX_MESSAGE_BYTES"))
        total = since_event = 0
        tail = carry = b""
        # NaN and Infinity, which the SDK's parser reads, are refused here for its transports: a
        # message spelling one is passed on as an error answer to its request (the call fails with
        # a clean error, the session lives on), or dropped. Each body, and each event, is passed on
        # only once whole, and parsed a second time only when its bytes hold one of the names.
        held: list[bytes] = []  # what was read of the body, or of the events not yet whole
        suspect = False
        async for chunk in self._inner:
            total += len(chunk)
            suspect = suspect or _names_unfit(chunk) or _names_unfit(carry + chunk[:_CARRY])
            carry = (carry + chunk)[-_CARRY:]
            held.append(chunk)
            if not self._events:
                if total > self._caps.max_message:
                    raise JsonTooLarge(too_large(self._caps.max_message, "BASTION_UPSTREAM_MAX_MESSAGE_BYTES"))
                continue
            before, seen = len(tail), tail + chunk
            end = max(seen.rfind(b"\n\n"), seen.rfind(b"\n\r\n"), seen.rfind(b"\r\r"))
            since_event = len(seen) - end if end >= 0 else since_event + len(chunk)
            tail = seen[-3:]
            if since_event > self._caps.max_message:
                raise EventTooLarge(too_large(self._caps.max_message, "BASTION_UPSTREAM_MAX_MESSAGE_BYTES"))
            if self._answer and total > self._caps.max_result:
                raise EventTooLarge(too_large(self._caps.max_result, "BASTION_UPSTREAM_MAX_RESULT_BYTES"))
            if end < 0:
                continue
            # Events ended in this chunk: they go on now (checked, if one may be unfit), the rest waits.
            after = max(seen.rfind(b"\n\n") + 2, seen.rfind(b"\n\r\n") + 3, seen.rfind(b"\r\r") + 2)
            cut = max(0, after - before)
            if not suspect and len(held) == 1:
                whole, rest = chunk[:cut], chunk[cut:]
            else:
                pending = b"".join(held)
                cut = len(pending) - len(chunk) + cut
                whole, rest = pending[:cut], pending[cut:]
                if suspect:
                    whole = _events_refused(whole)
            held, suspect = [rest], _names_unfit(rest)
            yield whole
        if self._events:
            if held != [b""]:
                yield b"".join(held)
            return
        if suspect:
            body = b"".join(held)
            replaced = _refused(body)
            if replaced == b"":
                raise JsonUnfit(unfit_detail("the upstream", "NaN or an infinity"))
            held = [body if replaced is None else replaced]
        for chunk in held:
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


@cache
def tls_context() -> ssl.SSLContext:
    """The system's CA certificates, loaded once: loading them takes ~25 ms of CPU, and every
    upstream, identity provider and registry client would otherwise load them twice. Every
    guarded client shares it and none changes it (the same verification everywhere)."""
    return httpx2.create_ssl_context(trust_env=False)


class GuardedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's own transport over a connection pool that connects through the guarded backend."""

    def __init__(self, rules: Rules, resolve: Resolve, limits: httpx2.Limits, caps: Caps | None = None) -> None:
        super().__init__(verify=tls_context(), limits=limits, trust_env=False)
        # httpx2 takes no network backend, so the pool it just built is replaced by one that has
        # ours: the one place Bastion sets a private attribute of httpx2.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=tls_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(rules, resolve),
        )
        self._caps = caps

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        if self._caps is None:
            return response
        events = response.headers.get("content-type", "").lower().startswith("text/event-stream")
        length = response.headers.get("content-length", "")
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        stream = _CappedStream(
            response.stream,
            self._caps,
            events=events,
            answer=request.method == "POST",
            declared=small_int(length),
        )
        return httpx2.Response(
            response.status_code, headers=response.headers, stream=stream, extensions=response.extensions
        )
