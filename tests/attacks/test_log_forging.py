"""Attack class: forging log lines. Text a caller chooses reaches some log lines: the MCP SDK's SSE
transport warns "Received invalid session ID: <the query parameter>". In the readable text format
(a terminal, or BASTION_LOG_FORMAT=text), a URL-encoded newline in that parameter started a line
of the caller's own, which reads as Bastion's (here a forged ERROR from bastion.auth), and an
escape sequence restyled the operator's terminal. The text format now escapes a message's control
characters; the JSON format always did (JSON strings cannot hold them raw)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bastion.telemetry.logging import JsonFormatter, TextFormatter
from tests.harness import Running, stdio_fixture

pytestmark = pytest.mark.anyio

FORGED = "2026-12-07 00:00:00,000 ERROR bastion.auth: admin signed in from 10.0.0.1"


@pytest.fixture(params=["text", "json"])
def log_lines(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """What Bastion's own log handler writes, in each format, while the test runs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter() if request.param == "text" else JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


async def test_a_newline_in_a_logged_query_parameter_cannot_forge_a_line(gateway: Running, log_lines: io.StringIO) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    evil = f"nope\n{FORGED}\x1b[2J"
    response = await gateway.api.post("/servers/vs/messages/", params={"session_id": evil}, json={})
    assert response.status_code == 400, response.text
    written = log_lines.getvalue()
    assert "invalid session ID" in written, written  # the line this test is about was written
    assert not any(line.startswith(FORGED) for line in written.splitlines()), written
    assert "\x1b" not in written
