"""Leftovers: small defects found late, each written failing first.

- A stdio upstream's stderr lines were logged at INFO: noisy, and an upstream may print its own
  secrets there. They are DEBUG now; the tail kept for the "not an MCP server" warning is unchanged.
"""

from __future__ import annotations

import logging

import pytest

from bastion.upstream.transports import stderr_tail
from tests.attacks.test_stdio_stderr_flood import run_to_exit

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


# -- a stdio upstream's stderr -------------------------------------------------------------

_TALKER = """
import sys
sys.stderr.write("connecting with api key sk-upstream-secret-123\\n")
sys.stderr.write("stderr done\\n")
sys.stderr.flush()
"""


async def test_a_stdio_upstreams_stderr_is_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    await run_to_exit("talker", _TALKER, "stderr done", caplog)
    lines = [r for r in caplog.records if r.getMessage().startswith("[talker]")]
    assert {r.levelno for r in lines} == {logging.DEBUG}, [(r.levelname, r.getMessage()) for r in lines]
    assert "sk-upstream-secret-123" in stderr_tail("talker")  # still kept for the one failure warning
