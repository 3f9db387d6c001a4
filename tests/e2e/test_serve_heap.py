"""`bastion serve` takes what starting made out of the cyclic GC's sight once it has started:
full collections then walk only what serving makes, not the ~200,000 objects of the SDK,
SQLAlchemy and the catalog (a full collection stopped every thread for 78-94 ms before)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.harness import TOKEN, free_port

# The real `bastion serve`, in a process of its own; gc.freeze is watched (the only seam), and the
# process ends once it has reported (or after 60 s without).
CHILD = textwrap.dedent(
    """
    import gc, os, sys, threading
    from bastion.cli.main import cli

    real_freeze = gc.freeze

    def freeze():
        real_freeze()
        gc.collect()
        print(f"frozen {gc.get_freeze_count()} tracked {len(gc.get_objects())}", flush=True)
        os._exit(0)

    gc.freeze = freeze
    threading.Timer(60, os._exit, (3,)).start()
    cli(["serve", "--port", sys.argv[1]])
    """
)


def test_serve_freezes_the_startup_heap_once_started(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/b.db",
        "BASTION_ADMIN_TOKEN": TOKEN,
        "BASTION_VAULT_KEY_FILE": f"{tmp_path}/vault.key",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(free_port())], env=env, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("frozen ")]
    assert lines, f"serve never froze its heap: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    _, frozen, _, tracked = lines[0].split()
    # Everything starting made is frozen; a full collection right after walks a small remainder.
    assert int(frozen) > 50_000
    assert int(tracked) < int(frozen) // 10
