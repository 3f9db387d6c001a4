"""Bastion's own stdio transport: a child process speaking newline-delimited JSON-RPC, with a cap on
each line.

The SDK's stdio client reads a line of any length and grows it by string concatenation, so a child
that answers 30 MB spent seconds of the gateway's CPU (quadratic) and went past
BASTION_UPSTREAM_MAX_MESSAGE_BYTES, which HTTP upstreams obey. Here a line is gathered in one
buffer; one over the limit is skipped to its end, and the request it answers (its top-level "id",
read from the line's start or end) gets an error that says why; a line whose id cannot be told is
only skipped (ending the session would fail every other caller's call on it too). A line nested
deeper than Bastion's JSON depth limit is refused the same way, before it is parsed, and a request
of the upstream's so nested gets an error answer (the SDK's parser dropped it, and the call waited
out its whole deadline). Spawning (its own process group,
the SDK's safe default environment), parsing and the shutdown sequence (close stdin, wait, then end
the process group, whether or not the child exited: what it started in its group goes with it)
follow the SDK's stdio client and the MCP lifecycle.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TextIO

import anyio
import anyio.to_thread
import mcp_types as types
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client.stdio import StdioServerParameters, get_default_environment
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.message import SessionMessage

from bastion.core.errors import UpstreamProtocolError, UpstreamTooLarge
from bastion.core.json_nesting import UPSTREAM_MAX_DEPTH, body_too_deep, too_deep_detail
from bastion.core.surrogates import UnfitNumber, finite_loads, unfit_detail

log = logging.getLogger("bastion.upstream")

_CHUNK = 64 * 1024
_PARSE_IN_THREAD = 1024 * 1024
_EXIT_GRACE = 2.0
_KILL_GRACE = 2.0
_FLUSH = 0.5
_ID_ZONE = 256
_ID = r'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")'
_HEAD_ID = re.compile(rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?' + _ID.encode())
_TAIL_ID = re.compile(rb"[,{]\s*" + _ID.encode() + rb"\s*\}\s*$")
_REQUEST = re.compile(rb'"method"\s*:')
_ANSWER = re.compile(rb'"(?:result|error)"\s*:')

Streams = tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]


def _parse(line: bytes) -> SessionMessage | Exception | UnfitNumber | None:
    """The line's message, the parser's error, None for a line nested past the depth limit, or
    UnfitNumber for one spelling NaN or an infinity (the SDK's parser reads them; no caller's JSON
    can carry them on). Only a line holding those names is parsed a second time, to tell."""
    if body_too_deep(line, UPSTREAM_MAX_DEPTH):
        return None
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError as exc:
        return exc
    if b"NaN" in line or b"Infinity" in line:
        try:
            finite_loads(line)
        except UnfitNumber as exc:
            return exc
    return SessionMessage(message)


def _answered_id(head: bytes, tail: bytes) -> types.RequestId | None:
    """The top-level id of a JSON-RPC message seen only by its first and last bytes: servers write
    it first ({"jsonrpc":"2.0","id":..}) or last (..,"id":..}); an id nested deeper never matches.
    None for a request of the upstream's (its id is in the upstream's numbering, not Bastion's)."""
    if is_upstream_request(head):
        return None
    return top_level_id(head, tail)


def is_upstream_request(head: bytes) -> bool:
    """Whether a message seen by its first bytes is a request (or notification) of the upstream's."""
    return bool(_REQUEST.search(head)) and not _ANSWER.search(head)


def top_level_id(head: bytes, tail: bytes) -> types.RequestId | None:
    found = _HEAD_ID.match(head) or _TAIL_ID.search(tail)
    if found is None:
        return None
    raw = found.group(1).decode("utf-8", "replace")
    if raw.startswith('"'):
        return raw[1:-1]
    return int(raw)


class _Lines:
    """Splits the child's stdout into lines of at most `limit` bytes; what is over is skipped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.skipping = 0
        self.head = b""

    def feed(self, chunk: bytes) -> list[bytes | tuple[bytes, bytes]]:
        """Complete lines, and (head, tail) for each line that was over the limit."""
        out: list[bytes | tuple[bytes, bytes]] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:end]
            if self.skipping:
                out.append((self.head, (bytes(self.buffer) + piece)[-_ID_ZONE:]))
                self.skipping, self.head = 0, b""
            elif len(self.buffer) + len(piece) > self.limit:
                out.append((bytes(self.buffer[:_ID_ZONE] + piece[:_ID_ZONE])[:_ID_ZONE], (bytes(self.buffer[-_ID_ZONE:]) + piece)[-_ID_ZONE:]))
            elif self.buffer:
                self.buffer += piece
                out.append(bytes(self.buffer))
            else:
                out.append(piece)
            self.buffer.clear()
            start = end + 1
        rest = chunk[start:]
        if self.skipping:
            self.skipping += len(rest)
            self.buffer = bytearray((bytes(self.buffer) + rest)[-_ID_ZONE:])
        elif len(self.buffer) + len(rest) > self.limit:
            self.head = bytes(self.buffer[:_ID_ZONE] + rest[:_ID_ZONE])[:_ID_ZONE]
            self.skipping = len(self.buffer) + len(rest)
            self.buffer = bytearray((bytes(self.buffer[-_ID_ZONE:]) + rest)[-_ID_ZONE:])
        else:
            self.buffer += rest
        return out


@asynccontextmanager
async def stdio_transport(
    params: StdioServerParameters, errlog: TextIO, *, upstream: str, max_message_bytes: int
) -> AsyncIterator[Streams]:
    """Run the child and yield (read, write) streams of SessionMessages, like the SDK's client."""
    process = await anyio.open_process(
        [params.command, *params.args],
        env=get_default_environment() | (params.env or {}),
        stderr=errlog,
        cwd=params.cwd,
        start_new_session=True,
    )
    started = _start_time(process.pid)
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    writer_done = anyio.Event()
    limit = f"Bastion's limit of {max_message_bytes} bytes (BASTION_UPSTREAM_MAX_MESSAGE_BYTES)"

    async def deliver(item: bytes | tuple[bytes, bytes]) -> None:
        if isinstance(item, bytes):
            if item.strip():
                parsed = await anyio.to_thread.run_sync(_parse, item) if len(item) >= _PARSE_IN_THREAD else _parse(item)
                if parsed is None:
                    await refuse_deep(item[:_ID_ZONE], item[-_ID_ZONE:])
                elif isinstance(parsed, UnfitNumber):
                    await refuse(item[:_ID_ZONE], item[-_ID_ZONE:], unfit_detail(f"upstream {upstream!r}", parsed.constant))
                else:
                    await read_writer.send(parsed)
            return
        request_id = _answered_id(*item)
        log.warning("upstream %r wrote a message larger than %s; skipped", upstream, limit)
        if request_id is None:
            return  # no way to tell whose answer it was: a call it answered runs into its deadline
        error = types.ErrorData(code=UpstreamTooLarge.jsonrpc_code, message=f"upstream {upstream!r} sent a message larger than {limit}")
        await read_writer.send(SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)))

    async def refuse_deep(head: bytes, tail: bytes) -> None:
        await refuse(head, tail, too_deep_detail(f"upstream {upstream!r}"), "Bastion refuses JSON nested that deep")

    async def refuse(head: bytes, tail: bytes, detail: str, why: str = "Bastion refuses it") -> None:
        """Skip a message Bastion will not pass on; the request it answers, or the upstream's own request, gets an error."""
        log.warning("%s; skipped", detail)
        message_id = top_level_id(head, tail)
        if message_id is None:
            return  # a notification, or no way to tell whose answer it was
        if is_upstream_request(head):  # the upstream waits for an answer: tell it, if the writer is free (never block reading)
            refusal = types.ErrorData(code=types.INVALID_REQUEST, message=f"{why}: {detail}")
            with suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                write_stream.send_nowait(SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=message_id, error=refusal)))
            return
        error = types.ErrorData(code=UpstreamProtocolError.jsonrpc_code, message=detail)
        await read_writer.send(SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=message_id, error=error)))

    async def reader() -> None:
        assert process.stdout is not None
        lines = _Lines(max_message_bytes)
        with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async with read_writer:
                with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    while True:
                        for item in lines.feed(await process.stdout.receive(_CHUNK)):
                            await deliver(item)
            # Nobody reads any more: drain, so a child blocked writing its stdout can see stdin close and exit.
            while True:
                await process.stdout.receive(_CHUNK)

    async def writer() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()  # the child stopped reading: the session must see the end
        finally:
            writer_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                await _shut_down(process, read_stream, write_stream, writer_done, started)
            tg.cancel_scope.cancel()


async def _shut_down(
    process: Process,
    read_stream: MemoryObjectReceiveStream[SessionMessage | Exception],
    write_stream: MemoryObjectSendStream[SessionMessage],
    writer_done: anyio.Event,
    started: str | None = None,
) -> None:
    """Stop traffic, let accepted messages out, close stdin, give the child time to exit, then end
    its whole process group (when it is still the child's: see `_group_is_ours`). Every wait is
    bounded. `started`: the child's start time when it was spawned, if known."""
    read_stream.close()  # the reader stops delivering and only drains, so a child blocked writing can exit
    write_stream.close()
    with anyio.move_on_after(_FLUSH):
        await writer_done.wait()
    assert process.stdin is not None and process.stdout is not None
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.aclose()
    exited = await _exited(process, _EXIT_GRACE)
    # Exited or not, the group is ended: what the child started in it (`sh -c 'sleep 1000 & exec
    # server'`) outlived it under PID 1. The group is the child's own (start_new_session), never
    # Bastion's; an empty one costs one killpg answered ESRCH.
    if process.pid != os.getpgrp() and _group_is_ours(process, started):
        await terminate_posix_process_tree(process, _KILL_GRACE)
    if not exited and not await _exited(process, _KILL_GRACE):
        log.warning("stdio upstream process %d is still alive after SIGKILL; abandoning it", process.pid)
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdout.aclose()
    if process.returncode is not None:
        # Releases the subprocess transport now rather than at garbage collection.
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError), anyio.move_on_after(_EXIT_GRACE):
            await process.aclose()


def _group_is_ours(process: Process, started: str | None) -> bool:
    """Whether the group named by the child's pid can only be the child's. Once the child is reaped
    its pid is free: while members of its group live the pid stays reserved (a group's id is not
    reused), but an emptied group's pid may be recycled, as another stdio child's own group leader,
    whose group a killpg would end. So the group is signalled only while the pid is the child's own
    (alive, or a zombie holding it: the same start time) or no process has it (then a group by
    that id is what the child left)."""
    now = _start_time(process.pid)
    if started is not None and now is not None:
        return now == started
    if started is not None:
        return True  # no process has the pid
    if process.returncode is None:
        return True  # not reaped yet: the pid is still the child's
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False  # reaped, and the pid is another process's now


def _start_time(pid: int) -> str | None:
    """A process's start time, which tells it from a later one with the same pid (Linux's /proc);
    None when no process has the pid, or there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of stat: starttime


async def _exited(process: Process, within: float) -> bool:
    """Poll returncode (process.wait() would also wait for pipes a grandchild may hold)."""
    with anyio.move_on_after(within):
        while process.returncode is None:
            await anyio.sleep(0.01)
        return True
    return False
