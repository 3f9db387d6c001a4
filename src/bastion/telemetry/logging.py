"""Structured logs: one line per MCP call and per REST request at INFO, JSON unless on a terminal.

Fields come from `extra=` (never argument or result values; errors are Bastion's own messages).
HTTP client libraries are kept quiet: their per-request lines say nothing an operator needs.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Sequence
from json.encoder import encode_basestring
from typing import Any

from bastion.core.json_encoders import json_encoder
from bastion.core.observation import CallRecord

_DUMPS = json_encoder(default=str, ensure_ascii=False)
# Libraries that log what must not reach a log: full outbound URLs with their query strings (HTTP
# clients, access logs), MCP session ids (the SDK, at INFO), SQL parameters such as password and
# token hashes (the database drivers, at DEBUG). They speak at WARNING and above, whatever the level.
QUIET = (
    "httpx", "httpx2", "httpcore", "httpcore2", "hpack", "h2", "aiohttp.access", "aiohttp.client", "uvicorn.access",
    "aiosqlite", "sqlalchemy", "asyncpg", "redis",
    "mcp.server.streamable_http", "mcp.server.streamable_http_manager", "mcp.server.sse",
    "mcp.client.streamable_http", "mcp.client.sse",
)


class JsonFormatter(logging.Formatter):
    def __init__(self, replica: str | None = None) -> None:
        super().__init__()
        self.replica = replica

    _second = -1
    _stamp = ""

    def time_text(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # strftime once per second, not per line
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        error = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            record.created, record.levelname.lower(), record.name, record.getMessage(),
            fields if isinstance(fields, dict) else None, error,
        )

    def line(
        self, created: float, level: str, logger: str, message: str, fields: dict[str, Any] | None, error: str | None = None
    ) -> str:
        """One JSON line (without its newline) from the parts of a record."""
        out: dict[str, Any] = {"time": self.time_text(created), "level": level, "logger": logger, "message": message}
        if self.replica is not None:
            out["replica"] = self.replica
        if fields is not None:
            out.update(fields)
        if error is not None:
            out["error"] = error
        return _DUMPS(out)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal. A message's control characters are escaped (`\\n`, `\\x1b`):
    text a caller chose reaches some lines (a library's warning quoting a query parameter), and a
    newline in it would forge a line of its own, an escape sequence restyle the terminal. A
    traceback after the message keeps its lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _CONTROL.sub(_escaped, record.message)
        return super().formatMessage(record)


def configure_logging(level: str, fmt: str = "auto", replica: str | None = None) -> None:
    """Root logging: JSON lines (`fmt` "json", or "auto" when stderr is not a terminal), else text."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(replica) if use_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_libraries()


def set_replica(replica: str) -> None:
    """Name this replica on every JSON line from now on (known only once Bastion starts)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.replica = replica


class CallLog:
    """A CallObserver writing the one INFO line per MCP request.

    The gateway tells it a batch of calls at a time (`calls_finished`). When its lines would reach
    only the one plain stream handler with the JSON formatter that `configure_logging` sets up, it
    makes each line as that formatter would and writes the batch at once, under the handler's lock;
    any other set-up (more handlers, filters, another formatter) gets log records through the
    logging module. Either way a line's time is when its call finished, not when it was written.
    """

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.log = logging.getLogger("bastion.calls")
        self._template = logging.LogRecord(self.log.name, logging.INFO, __file__, 0, "", (), None, "call_finished")
        self._fields = vars(self._template)

    def _record(self, at: float, message: str, args: tuple[object, ...], fields: dict[str, object]) -> logging.LogRecord:
        """A log record copied from the template (no caller lookup, no per-record process and
        thread look-ups): a third of what `Logger.info` costs."""
        template = self._template
        if threading.get_ident() != template.thread:
            record = logging.LogRecord(self.log.name, logging.INFO, __file__, 0, message, args, None, "call_finished")
            record.fields = fields
        else:
            record = logging.LogRecord.__new__(logging.LogRecord)
            record.__dict__.update(self._fields)
            record.msg, record.args, record.fields = message, args, fields
        record.created, record.msecs = at, int((at - int(at)) * 1000) + 0.0
        record.relativeCreated = template.relativeCreated + (at - template.created) * 1000
        return record

    @staticmethod
    def _message_args(record: CallRecord) -> tuple[object, ...]:
        return (
            record.method,
            f" {record.item}" if record.item else "",
            record.server or "-",
            record.outcome,
            record.seconds * 1000,
            f" ({record.error})" if record.error else "",
        )

    def _line_fields(self, record: CallRecord) -> dict[str, object]:
        return {
            "event": "mcp",
            "request_id": record.request_id,
            "replica": self.replica,
            "user": record.user,
            "token_id": record.token,
            "principal": record.principal,
            "server": record.server,
            "method": record.method,
            "item": record.item,
            "upstream": record.upstream,
            "outcome": record.outcome,
            "duration_ms": round(record.seconds * 1000, 3),
            "upstream_ms": round(record.upstream_seconds * 1000, 3),
        }

    def _log_record(self, record: CallRecord) -> logging.LogRecord:
        return self._record(record.started + record.seconds, _MESSAGE, self._message_args(record), self._line_fields(record))

    def call_finished(self, record: CallRecord) -> None:
        if self.log.isEnabledFor(logging.INFO):
            self.log.handle(self._log_record(record))

    def calls_finished(self, records: Sequence[CallRecord]) -> None:
        if not records or not self.log.isEnabledFor(logging.INFO):
            return
        handler = self._sole_json_handler()
        if handler is None:
            for record in records:
                self.call_finished(record)
            return
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        lines = [self._json_line(formatter, record) for record in records]
        lines.append("")
        text = handler.terminator.join(lines)
        with handler.lock or contextlib.nullcontext():
            try:
                handler.stream.write(text)
                handler.flush()
            except (OSError, ValueError):  # as StreamHandler.emit: the logging set-up's own error handling
                handler.handleError(self._log_record(records[-1]))

    def _json_line(self, formatter: JsonFormatter, record: CallRecord) -> str:
        """The text `formatter` makes of this call's record, made directly: the same keys in the
        same order, values encoded as the JSON encoder encodes them (strings, null, floats)."""
        replica = _string(self.replica)
        first = f', "replica": {replica}' if formatter.replica is not None else ""
        then = "" if first else f', "replica": {replica}'
        return (
            f'{{"time": "{formatter.time_text(record.started + record.seconds)}", "level": "info", '
            f'"logger": {_string(self.log.name)}, "message": {_string(_MESSAGE % self._message_args(record))}{first}, "event": "mcp", "request_id": {_string(record.request_id)}{then}, '
            f'"user": {_nullable(record.user)}, "token_id": {_nullable(record.token)}, '
            f'"principal": {_nullable(record.principal)}, "server": {_string(record.server)}, '
            f'"method": {_string(record.method)}, "item": {_nullable(record.item)}, '
            f'"upstream": {_nullable(record.upstream)}, "outcome": {_string(record.outcome)}, '
            f'"duration_ms": {float.__repr__(round(record.seconds * 1000, 3))}, '
            f'"upstream_ms": {float.__repr__(round(record.upstream_seconds * 1000, 3))}}}'
        )

    def _sole_json_handler(self) -> logging.StreamHandler[Any] | None:
        """The one handler this logger's INFO lines reach, when it is a plain stream handler with
        the JSON formatter and nothing on the way filters; else None."""
        found: logging.StreamHandler[Any] | None = None
        logger: logging.Logger | None = self.log
        while logger is not None:
            if logger.filters:
                return None
            for handler in logger.handlers:
                if found is not None or type(handler) is not logging.StreamHandler:
                    return None
                if handler.filters or handler.level > logging.INFO or type(handler.formatter) is not JsonFormatter:
                    return None
                found = handler
            logger = logger.parent if logger.propagate else None
        return found


_MESSAGE = "%s%s on %s: %s in %.1f ms%s"
_string = encode_basestring  # as the JSON formatter's encoder (ensure_ascii off) encodes a string


def _nullable(value: str | None) -> str:
    return "null" if value is None else _string(value)


class _NoStdioParseTracebacks(logging.Filter):
    """The SDK logs a traceback for every stdout line of a stdio upstream that is not JSON-RPC; the
    connection reports such an upstream once, with the tail of its stderr, instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to parse JSONRPC message")


def quiet_libraries() -> None:
    """No per-request lines from HTTP client libraries, no tracebacks for a non-MCP stdio upstream."""
    floor = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    for name in QUIET:
        logging.getLogger(name).setLevel(floor)
    stdio = logging.getLogger("mcp.client.stdio")
    if not any(isinstance(f, _NoStdioParseTracebacks) for f in stdio.filters):
        stdio.addFilter(_NoStdioParseTracebacks())
