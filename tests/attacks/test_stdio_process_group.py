"""Attack class: a stdio upstream leaves processes behind. Bastion starts each stdio server in a
process group of its own, but ended the group only when the server itself would not exit: a server
that exits when its stdin closes left what it had started (`sh -c 'sleep 1000 & exec server'`, a
helper it forked) running under PID 1 after the upstream was removed, or after Bastion stopped. Now
the group is ended whenever the server's process is stopped."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from tests.harness import FIXTURE, serve, settings_for

pytestmark = pytest.mark.anyio

SLEEP = "4871"
"""How long the left-behind child sleeps: a number no other test's process carries in its command line."""


def _forking(name: str, pid_file: Path) -> dict[str, object]:
    """The fixture stdio server, started by a shell that first leaves a `sleep` child in its group."""
    script = f'sleep {SLEEP} & echo $! > "$1"; exec "$2" "$3" --transport stdio'
    return {"name": name, "transport": "stdio", "command": "/bin/sh", "args": ["-c", script, "sh", str(pid_file), sys.executable, str(FIXTURE)]}


def _running(pid: int) -> bool:
    """Whether `pid` is still our sleeping child (a zombie awaiting PID 1 counts as ended)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return SLEEP.encode() in cmdline and state != "Z"


def _kill(pid: int) -> None:
    """Leave nothing behind when the test fails."""
    if _running(pid):
        os.kill(pid, signal.SIGKILL)


async def _child(pid_file: Path) -> int:
    with anyio.fail_after(30):  # a hang guard: the shell writes the file before it starts the server
        while not pid_file.exists() or not pid_file.read_text().strip():
            await anyio.sleep(0.05)
    pid = int(pid_file.read_text())
    assert _running(pid)
    return pid


async def _ended(pid: int) -> None:
    with anyio.fail_after(30):  # a hang guard, not a timing assertion: before the fix it never ends
        while _running(pid):
            await anyio.sleep(0.05)


@pytest.mark.parametrize("stop", ["removal", "shutdown"])
async def test_stopping_a_stdio_server_ends_what_it_started(tmp_path: Path, stop: str) -> None:
    """After DELETE /api/v1/upstreams/<name>, and after Bastion itself stops."""
    pid_file = tmp_path / "child.pid"
    try:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
            await gateway.register(_forking("forker", pid_file))
            pid = await _child(pid_file)
            if stop == "removal":
                removed = await gateway.api.delete("/api/v1/upstreams/forker", params={"force": "true"})
                assert removed.status_code == 204, removed.text
                await _ended(pid)
        await _ended(pid)
    finally:
        if pid_file.exists() and pid_file.read_text().strip():
            _kill(int(pid_file.read_text()))
