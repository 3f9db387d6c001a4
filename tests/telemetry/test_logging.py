"""The one structured line per MCP call: JSON with the call's facts and none of its values."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bastion.core.observation import CallRecord
from bastion.telemetry.logging import CallLog, JsonFormatter, TextFormatter


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def _calls_logger(handler: logging.Handler, level: int = logging.INFO, *, alone: bool = False) -> Iterator[None]:
    """`handler` on the `bastion.calls` logger at `level`; `alone`: the logger's only handler
    (pytest's own handlers sit on the root)."""
    logger = logging.getLogger("bastion.calls")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = not alone
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def test_a_call_is_one_json_line_with_its_facts_and_no_values() -> None:
    keep = _Keep()
    keep.setFormatter(JsonFormatter("replica-1"))
    with _calls_logger(keep):
        CallLog("replica-1").call_finished(
            CallRecord(
                request_id="abc123", started=1_800_000_000.0, server="vs", method="tools/call", outcome="tool_error",
                seconds=0.0123, upstream_seconds=0.01, upstream="fx", item="fx__echo", kind="tool", principal="token:t1",
                user="u1", token="t1", params={"arguments": {"text": "planted-secret"}},
                result={"content": [{"type": "text", "text": "planted-secret"}], "isError": True},
            )
        )
    [line] = keep.lines
    assert "planted-secret" not in line
    data = json.loads(line)
    assert data["time"].endswith("Z") and data["level"] == "info" and data["logger"] == "bastion.calls"
    expected = {
        "request_id": "abc123", "replica": "replica-1", "user": "u1", "token_id": "t1", "server": "vs",
        "method": "tools/call", "item": "fx__echo", "upstream": "fx", "outcome": "tool_error", "duration_ms": 12.3,
    }
    assert expected.items() <= data.items()


def _call(outcome: str = "ok", error: str | None = None) -> CallRecord:
    return CallRecord(
        request_id="r1", started=1_800_000_000.0, server="vs", method="tools/call", outcome=outcome, seconds=0.0123,
        upstream_seconds=0.01, upstream="fx", item="fx__echo", kind="tool", principal="token:t1", error=error,
    )


def test_on_a_terminal_the_line_is_readable_text_from_any_thread() -> None:
    keep = _Keep()
    keep.setFormatter(TextFormatter())
    calls = CallLog("replica-1")
    with _calls_logger(keep):
        calls.call_finished(_call())
        other = threading.Thread(target=calls.call_finished, args=(_call("denied", "Forbidden: no"),))
        other.start()
        other.join()
    first, second = keep.lines
    assert first.endswith(" INFO bastion.calls: tools/call fx__echo on vs: ok in 12.3 ms")
    assert second.endswith(" INFO bastion.calls: tools/call fx__echo on vs: denied in 12.3 ms (Forbidden: no)")
    assert first[:4].isdigit()  # the time comes first


def test_no_line_is_made_when_info_is_off() -> None:
    keep = _Keep()
    with _calls_logger(keep, logging.WARNING):
        CallLog("replica-1").call_finished(_call())
        CallLog("replica-1").calls_finished([_call()])
    assert keep.lines == []


def _calls() -> list[CallRecord]:
    return [
        _call(),
        _call("denied", 'Forbidden: "quoted" \u00e9\n'),
        CallRecord(
            request_id="r3", started=1_800_000_001.25, server="", method="initialize", outcome="ok", seconds=0.0004,
            upstream_seconds=0.0,
        ),
        CallRecord(
            request_id="r4", started=1_800_000_002.9996, server="vs", method="tools/call", outcome="error", seconds=12.5,
            upstream_seconds=12.4999, upstream="fx", item='fx__a\\b"\u2028', kind="tool", principal="user:\u00e9", user='u"1',
            token=None, error="Upstream unavailable: upstream 'fx' \x01",
        ),
    ]


def _written(batch: bool, *, with_filter: bool = False, replica: str | None = "replica-1") -> str:
    """What the `bastion.calls` logger's one stream handler (JSON, as configure_logging sets up) got."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(replica))
    if with_filter:
        handler.addFilter(lambda record: "denied" not in record.getMessage())
    calls = CallLog("replica-1")
    with _calls_logger(handler, alone=True):
        if batch:
            calls.calls_finished(_calls())
        else:
            for call in _calls():
                calls.call_finished(call)
    return out.getvalue()


def test_a_batch_written_at_once_is_the_lines_the_logging_module_would_write() -> None:
    lines = _written(batch=True)
    assert lines == _written(batch=False)
    assert [json.loads(line)["request_id"] for line in lines.split("\n")[:-1]] == ["r1", "r1", "r3", "r4"]
    assert lines.endswith("\n") and lines.count("\n") == 4
    assert _written(batch=True, replica=None) == _written(batch=False, replica=None)  # the formatter names no replica


def test_a_batch_goes_through_the_logging_module_when_a_filter_is_on_the_way() -> None:
    lines = _written(batch=True, with_filter=True)
    assert lines == _written(batch=False, with_filter=True)
    assert [json.loads(line)["outcome"] for line in lines.split("\n")[:-1]] == ["ok", "ok", "error"]


def test_a_batch_reaches_every_handler_when_there_are_several() -> None:
    keep = _Keep()
    keep.setFormatter(JsonFormatter("replica-1"))
    with _calls_logger(keep):
        CallLog("replica-1").calls_finished(_calls())
    assert [json.loads(line)["request_id"] for line in keep.lines] == ["r1", "r1", "r3", "r4"]
