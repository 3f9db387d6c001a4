"""A stdio upstream's environment holds secrets the operator sealed in the vault; a child that
prints one to stderr and exits used to have it logged: in its stderr lines (DEBUG) and at WARNING in
the tail of every reconnect's failure line, one every backoff (every 30 s for as long as it failed).
Now the environment's values are written as [redacted] wherever its stderr goes, and a failure that
repeats unchanged is one warning, not one per attempt."""

from __future__ import annotations

import logging
import sys

import anyio
import pytest

from bastion.core.models import UpstreamSpec
from bastion.upstream.connection import UpstreamConnection

pytestmark = pytest.mark.anyio
SECRET = "sk-vault-sealed-4711-secret"
CHILD = """
import os, sys
sys.stderr.write("boom config token=" + os.environ["LEAKY_TOKEN"] + " mode=" + os.environ["LEAKY_MODE"] + "\\n")
sys.stderr.flush()
"""


async def _ignore(*_: object) -> None:
    return None


async def fail_four_times(spec: UpstreamSpec) -> None:
    """Run a connection to `spec` until it has failed four times (reconnecting fast), then stop it."""
    connection = UpstreamConnection(
        spec, http_client=None, on_notification=_ignore, connect_timeout=10, backoff_base=0.01, backoff_cap=0.02
    )
    with anyio.fail_after(60):  # a hang guard only
        async with anyio.create_task_group() as tg:
            await tg.start(connection.run)
            while connection.failures < 4:
                await anyio.sleep(0.02)
            await connection.stop()


async def test_an_env_secret_printed_to_stderr_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    spec = UpstreamSpec(
        name="leaky", transport="stdio", command=sys.executable, args=("-c", CHILD),
        env={"LEAKY_TOKEN": SECRET, "LEAKY_MODE": "1"},
    )
    caplog.set_level(logging.DEBUG, logger="bastion.upstream")
    await fail_four_times(spec)
    stderr_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[leaky]")]
    assert stderr_lines and all("token=[redacted]" in line for line in stderr_lines), stderr_lines
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "its stderr ended with: boom config token=[redacted] mode=1" in warnings[0]


LONG_LINE = """
import os, sys
sys.stderr.write("x" * 4080 + os.environ["LEAKY_TOKEN"] + "y" * 50 + "\\n")
sys.stderr.write("short " + os.environ["LEAKY_TOKEN"] + "\\n")
sys.stderr.write("done\\n")
sys.stderr.flush()
"""


async def test_a_secret_across_a_long_lines_cut_leaves_nothing_of_itself(caplog: pytest.LogCaptureFixture) -> None:
    """A line is cut at 4,096 characters; it was cut before it was redacted, so a secret across the
    cut was logged up to it ("...sk-vault-sealed-... (11 more characters)")."""
    from tests.attacks.test_stdio_stderr_flood import run_to_exit

    spec_env = {"LEAKY_TOKEN": SECRET}
    await run_to_exit("longleak", LONG_LINE, "done", caplog, env=spec_env)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[longleak]")]
    assert len(lines) == 3 and lines[1] == "[longleak] short [redacted]", lines
    assert all(SECRET[:8] not in line for line in lines), [line[-80:] for line in lines]


async def test_a_failure_whose_stderr_was_read_at_one_attempt_and_not_the_next_is_one_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whether a dead child's last stderr line is read before its exit is noticed is a race: the
    # failure line has the tail at one attempt and not at the next. It is the same failure.
    tails = iter(["boom", "", "boom", "", "boom", ""] * 10)
    monkeypatch.setattr("bastion.upstream.connection.stderr_tail", lambda _name: next(tails))
    spec = UpstreamSpec(name="flaky", transport="stdio", command=sys.executable, args=("-c", "pass"))
    caplog.set_level(logging.DEBUG, logger="bastion.upstream")
    await fail_four_times(spec)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].endswith("its stderr ended with: boom"), warnings
