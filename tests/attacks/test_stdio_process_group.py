"""Attack class: a stdio upstream leaves processes behind. Bastion starts each stdio server in a
process group of its own, but ended the group only when the server itself would not exit: a server
that exits when its stdin closes left what it had started (`sh -c 'sleep 1000 & exec server'`, a
helper it forked) running under PID 1 after the upstream was removed, or after Bastion stopped. Now
the group is ended whenever the server's process is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from bastion.upstream.stdio import _shut_down
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


class _Pipe:
    async def aclose(self) -> None:
        return None


class _Reaped:
    """A stdio child already reaped (its returncode read), whose pid now names another process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode = 0
        self.stdin = self.stdout = _Pipe()

    async def aclose(self) -> None:
        return None


async def _stop(process: object, **started: str) -> None:
    read_send, read_stream = anyio.create_memory_object_stream[object](0)
    write_stream, write_receive = anyio.create_memory_object_stream[object](0)
    done = anyio.Event()
    done.set()
    with read_send, write_receive:
        await _shut_down(process, read_stream, write_stream, done, **started)  # type: ignore[arg-type]


@pytest.mark.parametrize("known", ["start time unknown", "start time known"])
async def test_a_recycled_pid_s_group_is_not_ended(known: str) -> None:
    """Once a stdio child whose group had emptied was reaped, its pid could be recycled as another
    process's group leader (another stdio child's, started in a session of its own): ending the
    group by the old pid (killpg) after the reaping ended that stranger's group. A group is ended
    only while the pid is still the child's, or no process has it."""
    stranger = subprocess.Popen(["sleep", SLEEP], start_new_session=True)
    try:
        started = {"started": "1"} if known == "start time known" else {}  # not the stranger's start time
        await _stop(_Reaped(stranger.pid), **started)
        assert stranger.poll() is None  # still running: its group was not signalled
    finally:
        stranger.kill()
        stranger.wait()
