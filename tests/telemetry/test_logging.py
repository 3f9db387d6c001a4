"""The one structured line per MCP call: JSON with the call's facts and none of its values."""

from __future__ import annotations

import json
import logging
import threading

from bastion.core.observation import CallRecord
from bastion.telemetry.logging import CallLog, JsonFormatter, TextFormatter


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_a_call_is_one_json_line_with_its_facts_and_no_values() -> None:
    keep = _Keep()
    keep.setFormatter(JsonFormatter("replica-1"))
    logger = logging.getLogger("bastion.calls")
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        CallLog("replica-1").call_finished(
            CallRecord(
                request_id="abc123", started=1_800_000_000.0, server="vs", method="tools/call", outcome="tool_error",
                seconds=0.0123, upstream_seconds=0.01, upstream="fx", item="fx__echo", kind="tool", principal="token:t1",
                user="u1", token="t1", params={"arguments": {"text": "planted-secret"}},
                result={"content": [{"type": "text", "text": "planted-secret"}], "isError": True},
            )
        )
    finally:
        logger.removeHandler(keep)
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
    logger = logging.getLogger("bastion.calls")
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    calls = CallLog("replica-1")
    try:
        calls.call_finished(_call())
        other = threading.Thread(target=calls.call_finished, args=(_call("denied", "Forbidden: no"),))
        other.start()
        other.join()
    finally:
        logger.removeHandler(keep)
        logger.setLevel(logging.NOTSET)
    first, second = keep.lines
    assert first.endswith(" INFO bastion.calls: tools/call fx__echo on vs: ok in 12.3 ms")
    assert second.endswith(" INFO bastion.calls: tools/call fx__echo on vs: denied in 12.3 ms (Forbidden: no)")
    assert first[:4].isdigit()  # the time comes first


def test_no_line_is_made_when_info_is_off() -> None:
    keep = _Keep()
    logger = logging.getLogger("bastion.calls")
    logger.addHandler(keep)
    logger.setLevel(logging.WARNING)
    try:
        CallLog("replica-1").call_finished(_call())
    finally:
        logger.removeHandler(keep)
        logger.setLevel(logging.NOTSET)
    assert keep.lines == []
