"""A deep body must be refused on its bytes, not by the C parser's recursion: `json.loads` recurses in
C once per level and stops only at the interpreter's recursion limit, which is process-wide. A test
runner (hypothesis raises it by 2,000 while a test runs) or a library that raises it let a 4,000-level
body overflow a server thread's C stack and kill the whole process (CI saw `Aborted`). Each reader of
request bodies is run in a child process with a small thread stack and a huge recursion limit: the
old readers crashed it; now every one refuses the body."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

READERS = {
    "rest": "from bastion.web.rest.common import parse_json as read",
    "facade": "from bastion.web.rest.facade import tool_arguments as read",
    "mcp-fast": "from bastion.web.mcp_fast import _decode as read",
    "audit": "from bastion.web.audited import _json as read",
    "guard": "from bastion.web.json_depth import loads as read",
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_deep_body_is_refused_whatever_the_recursion_limit(reader: str, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    script = textwrap.dedent(
        f"""
        import sys, threading
        {READERS[reader]}
        body = ({opener!r} * 200_000 + "1" + {closer!r} * 200_000).encode()
        outcome = []

        def run():
            try:
                outcome.append(repr(read(body)))
            except Exception as exc:
                outcome.append(type(exc).__name__ + ": " + str(exc))

        sys.setrecursionlimit(1_000_000)
        threading.stack_size(256 * 1024)
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        print(outcome[0])
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    answer = done.stdout.strip()
    assert answer in ("None",) or "nests deeper" in answer, answer
