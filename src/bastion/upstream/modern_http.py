"""A lean client for 2026-07-28 upstreams over Streamable HTTP: one POST per request, no session.

This is the hot path to HTTP upstreams. The SDK client costs ~1.3 ms of CPU per call here (a task,
memory streams and pydantic models per message, over httpx); this sends one JSON body over a
pooled aiohttp connection and parses the one reply, JSON or an SSE stream of progress events
ending in the reply. Handshake, discovery of the version and everything stateful stay with the SDK.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
from mcp.shared.inbound import encode_header_value, find_invalid_x_mcp_header, mcp_param_headers, x_mcp_header_map
from yarl import URL

from bastion.core.errors import UpstreamProtocolError, UpstreamRpcError, UpstreamTooLarge, UpstreamUnavailable
from bastion.core.json_nesting import UPSTREAM_MAX_DEPTH, body_too_deep, too_deep_detail
from bastion.core.ports import CallHooks
from bastion.core.surrogates import NotUnicode, UnfitNumber, not_unicode, strict_loads, unfit_detail
from bastion.core.tracing import header_text
from bastion.core.values import small_int
from bastion.upstream.oauth import TokenSource

_MiB = 1024 * 1024
_PARSE_IN_THREAD = 1 * _MiB
"""Messages at least this large are parsed in a worker thread, so one upstream's payload never
holds the event loop (and every other caller) for the tens of milliseconds parsing takes."""
_MAX_REDIRECTS = 5

_NAME_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_META_PREFIX = "io.modelcontextprotocol/"
_VERSION_KEY = f"{_META_PREFIX}protocolVersion"
_INFO_KEY = f"{_META_PREFIX}clientInfo"


def _jsonrpc_outcome(message: Any, upstream: str) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise UpstreamProtocolError(f"upstream {upstream!r} sent a reply that is not a JSON-RPC object")
    if "result" in message and isinstance(message["result"], dict):
        return message["result"]
    error = message.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), int):
        raise UpstreamRpcError(str(error.get("message", "")), error["code"], error.get("data"))
    raise UpstreamProtocolError(f"upstream {upstream!r} sent a reply with neither result nor error")


class ModernHttpClient:
    """Requests to one 2026-07-28 upstream. Safe for any number of concurrent callers."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        upstream: str,
        url: str,
        headers: Mapping[str, str],
        protocol_version: str,
        bearer: TokenSource | None = None,
        client_info: dict[str, Any],
        client_capabilities: dict[str, Any],
        max_message_bytes: int = 16 * _MiB,
        max_result_bytes: int = 64 * _MiB,
    ) -> None:
        self._http = http
        self._max_message = max_message_bytes
        self._max_result = max(max_result_bytes, max_message_bytes)
        self._bearer = bearer
        self._upstream = upstream
        self._url = url
        self._headers = {
            **headers,
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": protocol_version,
        }
        self._envelope = {
            f"{_META_PREFIX}protocolVersion": protocol_version,
            f"{_META_PREFIX}clientInfo": client_info,
            f"{_META_PREFIX}clientCapabilities": client_capabilities,
        }
        self._ids = itertools.count(1)
        self._param_headers: dict[str, dict[tuple[str, ...], str]] = {}

    def _learn_tools(self, result: dict[str, Any]) -> None:
        """Remember which tool arguments must be mirrored into Mcp-Param-* headers."""
        for tool in result.get("tools") or ():
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            schema = tool.get("inputSchema")
            if isinstance(schema, dict) and find_invalid_x_mcp_header(schema) is None:
                mapping = x_mcp_header_map(schema)
                if mapping:
                    self._param_headers[tool["name"]] = mapping
                else:
                    self._param_headers.pop(tool["name"], None)

    def _request_headers(self, method: str, params: dict[str, Any]) -> dict[str, str]:
        headers = {**self._headers, "mcp-method": method}
        key = _NAME_PARAM.get(method)
        if key is not None and isinstance(name := params.get(key), str):
            headers["mcp-name"] = encode_header_value(name)
            mapping = self._param_headers.get(name) if method == "tools/call" else None
            if mapping and isinstance(arguments := params.get("arguments"), dict):
                headers.update(mcp_param_headers(mapping, arguments))
        return headers

    async def request(
        self, method: str, params: dict[str, Any] | None, *, hooks: CallHooks | None = None
    ) -> dict[str, Any]:
        request_id = next(self._ids)
        body_params = dict(params) if params else {}
        meta = {**self._envelope, **(body_params.get("_meta") or {})}
        # Bastion speaks for itself on the protocol version and client identity; the end client's
        # capabilities (forwarded by the route stage) win over Bastion's empty ones.
        meta[_VERSION_KEY], meta[_INFO_KEY] = self._envelope[_VERSION_KEY], self._envelope[_INFO_KEY]
        if hooks is not None and hooks.on_progress is not None:
            meta["progressToken"] = request_id
        level = hooks.log_opt_in() if hooks is not None else None
        if level is not None:
            meta[f"{_META_PREFIX}logLevel"] = level
        body_params["_meta"] = meta
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": body_params})
        headers = self._request_headers(method, body_params)
        for key in ("traceparent", "tracestate"):  # the trace context travels as a header too
            if isinstance(value := meta.get(key), str) and header_text(value):  # a client's, with tracing off
                headers[key] = value
        try:
            result = await self._post(body.encode(), headers, request_id, hooks)
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"upstream {self._upstream!r} failed during {method}: {type(exc).__name__}") from None
        if method == "tools/list":
            self._learn_tools(result)
        return result

    async def _post(
        self, body: bytes, headers: dict[str, str], request_id: int, hooks: CallHooks | None
    ) -> dict[str, Any]:
        """POST once; with OAuth, once more with a fresh token if the upstream refuses the first (401)."""
        for attempt in range(2):
            token = await self._bearer.token() if self._bearer is not None else None
            if token is not None:
                headers = {**headers, "authorization": f"Bearer {token}"}
            url = URL(self._url)
            for _ in range(_MAX_REDIRECTS + 1):
                async with self._http.post(url, data=body, headers=headers, allow_redirects=False) as response:
                    following = self._same_origin_redirect(url, response)
                    if following is not None:
                        url = following
                        continue
                    if response.status == 401 and token is not None and attempt == 0 and self._bearer is not None:
                        self._bearer.invalidate(token)
                        break
                    return await self._read_reply(response, request_id, hooks)
            else:
                raise UpstreamProtocolError(f"upstream {self._upstream!r} redirected more than {_MAX_REDIRECTS} times")
        raise UpstreamUnavailable(f"upstream {self._upstream!r} refused Bastion's access token")  # pragma: no cover

    def _same_origin_redirect(self, url: URL, response: aiohttp.ClientResponse) -> URL | None:
        """Where a redirect leads, if it is one Bastion follows: 307/308 (the POST is sent again as it
        was) within the upstream's origin, as the SDK's transports do. Any other redirect is refused:
        it may lead anywhere, the internal network included, with the upstream's credentials."""
        if not 300 <= response.status < 400:
            return None
        try:
            location = response.headers.get("location")
            target = url.join(URL(location)) if location else None
            if response.status in (307, 308) and target is not None and target.origin() == url.origin():
                if not target.user:
                    return target
        except ValueError:
            pass  # a Location that is no URL is refused like any other
        raise UpstreamProtocolError(
            f"upstream {self._upstream!r} answered with a redirect (HTTP {response.status}) away from its URL; "
            "Bastion does not follow it (register the URL it redirects to instead)"
        )

    async def _read_reply(
        self, response: aiohttp.ClientResponse, request_id: int, hooks: CallHooks | None
    ) -> dict[str, Any]:
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            try:
                message = await _parse(await self._read_capped(response), self._upstream)
            except ValueError:
                raise UpstreamProtocolError(f"upstream {self._upstream!r} sent invalid JSON") from None
            return _jsonrpc_outcome(message, self._upstream)
        if response.status >= 400:
            raise UpstreamUnavailable(f"upstream {self._upstream!r} answered HTTP {response.status}")
        if not content_type.startswith("text/event-stream"):
            raise UpstreamProtocolError(f"upstream {self._upstream!r} answered with {content_type or 'no content type'}")
        messages = _sse_messages(response, self._too_large, self._max_message, self._max_result, upstream=self._upstream)
        async for message in messages:
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return _jsonrpc_outcome(message, self._upstream)
            if hooks is not None:
                await _relay(message, request_id, hooks)
        raise UpstreamUnavailable(f"upstream {self._upstream!r} closed the stream before replying")

    def _too_large(self, limit: int) -> UpstreamTooLarge:
        setting = "BASTION_UPSTREAM_MAX_MESSAGE_BYTES" if limit == self._max_message else "BASTION_UPSTREAM_MAX_RESULT_BYTES"
        return UpstreamTooLarge(
            f"upstream {self._upstream!r} sent a message larger than Bastion's limit of {limit} bytes ({setting})"
        )

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, read in chunks and refused as soon as it passes the message limit."""
        if response.content_length is not None and response.content_length > self._max_message:
            raise self._too_large(self._max_message)
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > self._max_message:
                raise self._too_large(self._max_message)
        return bytes(body)


async def _parse(data: bytes, upstream: str) -> Any:
    if len(data) >= _PARSE_IN_THREAD:
        return await anyio.to_thread.run_sync(_loads, data, upstream)
    return _loads(data, upstream)


def _loads(data: bytes, upstream: str) -> Any:
    """The message; one holding a lone surrogate (valid JSON, no text: it would break whatever
    stores, signs or re-encodes it) is refused, as the SDK's parser refuses it on the other path.
    So is one nested past the depth limit, measured before parsing (json.loads would recurse), and
    one spelling NaN or an infinity (met by the parser: JSON cannot carry it on to any caller)."""
    if body_too_deep(data, UPSTREAM_MAX_DEPTH):
        raise UpstreamProtocolError(too_deep_detail(f"upstream {upstream!r}"))
    try:
        return strict_loads(data, finite=True)
    except NotUnicode as exc:  # worded here, not on every call: this is the path of every call
        raise not_unicode(f"upstream {upstream!r}", exc.char) from None
    except UnfitNumber as exc:  # NaN or an infinity: no caller's JSON can carry it on
        raise UpstreamProtocolError(unfit_detail(f"upstream {upstream!r}", exc.constant)) from None


async def _relay(message: dict[str, Any], request_id: int, hooks: CallHooks) -> None:
    """Pass a notification that arrived on this call's stream to the caller's hooks."""
    method, params = message.get("method"), message.get("params")
    if not isinstance(params, dict):
        return
    if method == "notifications/progress" and hooks.on_progress is not None:
        if params.get("progressToken") == request_id and isinstance(params.get("progress"), int | float):
            await hooks.on_progress(params["progress"], params.get("total"), params.get("message"))
    elif method == "notifications/message" and hooks.on_log is not None:
        await hooks.on_log(params)


@dataclass(slots=True)
class SseCursor:
    """Where a stream got to: its last event id and the reconnect delay it asked for (SEP-1699)."""

    last_id: str | None = None
    retry_ms: int | None = None


async def _sse_messages(
    response: aiohttp.ClientResponse,
    too_large: Any,
    max_message: int,
    max_result: int,
    cursor: SseCursor | None = None,
    *,
    upstream: str,
    skip_deep: bool = False,
) -> AsyncIterator[dict[str, Any]]:
    """JSON messages from an SSE body (`data:` lines joined per event; comments and pings skipped).

    Read in chunks, never by unbounded lines: one event (its data so far, and a line not yet ended)
    over `max_message` bytes, or a stream over `max_result`, is refused as soon as it is seen.
    An event nested past the depth limit fails the stream's call (UpstreamProtocolError), or with
    `skip_deep` (a stream that answers no call) is skipped.
    With a `cursor`, the stream's `id:` and `retry:` fields are kept in it for a resumption."""
    pending = b""
    data: list[bytes] = []
    size = total = 0
    event_id: str | None = None  # the id: of the event being read, the cursor's once the event is whole
    async for chunk in response.content.iter_any():
        total += len(chunk)
        if total > max_result:
            raise too_large(max_result)
        if b"\n" not in chunk:
            pending += chunk
            lines: list[bytes] = []
        else:
            *lines, pending = (pending + chunk).split(b"\n")
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
                size += len(value)
            elif cursor is not None and line.startswith((b"id:", b"retry:")):
                event_id = _advance(cursor, line, event_id)
            elif not line:
                # An event is whole at its blank line: only then is its id where a resumption starts
                # (a stream cut inside the event must get it again). A priming event has no data.
                if cursor is not None and event_id is not None:
                    cursor.last_id, event_id = event_id, None
                if data:
                    message = await _event_message(b"\n".join(data), upstream, skip_deep)
                    data, size = [], 0
                    if isinstance(message, dict):
                        yield message
        if size + len(pending) > max_message:
            raise too_large(max_message)


def _advance(cursor: SseCursor, line: bytes, event_id: str | None) -> str | None:
    """Take an `id:` or `retry:` line; returns the id of the event being read."""
    field, _, value = line.partition(b":")
    text = value[1:] if value.startswith(b" ") else value
    if field == b"id" and b"\0" not in text:
        return text.decode("utf-8", "replace")
    if field == b"retry" and (retry_ms := small_int(text, 9)) is not None:  # under 12 days
        cursor.retry_ms = retry_ms
    return event_id


async def _event_message(data: bytes, upstream: str, skip_deep: bool) -> Any:
    if skip_deep and body_too_deep(data, UPSTREAM_MAX_DEPTH):
        return None
    try:
        return await _parse(data, upstream)
    except ValueError:
        return None
