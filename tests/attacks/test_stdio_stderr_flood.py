"""A stdio upstream that floods stderr without a newline: its log lines stay short.

Before, the stderr pump read whole lines (`for line in file`), so one line of megabytes was held in
memory whole and written to Bastion's log whole.
"""

from __future__ import annotations

import logging
import sys

import anyio
import pytest

from bastion.core.models import UpstreamSpec
from bastion.upstream.transports import open_transport, stderr_tail

pytestmark = pytest.mark.anyio

_FLOOD = 3_000_000
_CHILD = f"""
import sys
sys.stderr.write("x" * {_FLOOD})
sys.stderr.write("\\nafter the flood\\n")
sys.stderr.flush()
"""


async def run_to_exit(
    name: str, child: str, last: str, caplog: pytest.LogCaptureFixture, env: dict[str, str] | None = None
) -> None:
    """Run `child` (Python source) as a stdio upstream, with `env`, until it exits and its stderr line `last` is logged."""
    spec = UpstreamSpec(name=name, transport="stdio", command=sys.executable, args=("-c", child), env=env or {})
    caplog.set_level(logging.DEBUG, logger="bastion.upstream")
    with anyio.fail_after(30):
        async with open_transport(spec, None, anyio.Event()) as (read, _write):
            async for _ in read:  # the child writes nothing on stdout and exits
                pass
        while not any(last in r.getMessage() for r in caplog.records):  # the pump thread logs as it reads
            await anyio.sleep(0.02)


async def test_a_flooded_stderr_line_is_logged_cut_short(caplog: pytest.LogCaptureFixture) -> None:
    await run_to_exit("flood", _CHILD, "after the flood", caplog)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[flood]")]
    assert any("after the flood" in line for line in lines), lines
    assert max(len(line) for line in lines) < 10_000
    flooded = next(line for line in lines if line.startswith("[flood] xxx"))
    assert flooded.endswith(f"({_FLOOD - 4096} more characters)")
    assert "after the flood" in stderr_tail("flood")
