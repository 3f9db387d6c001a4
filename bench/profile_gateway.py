"""Run `bastion serve` under cProfile, profiling only between SIGUSR1 (start) and SIGUSR2 (write
the profile to $BENCH_PROFILE_OUT, e.g. to read with `python -m pstats`), so start-up and warm-up
stay out of it. Used as a gateway wrapper by facade_overhead.py --profile:

    BENCH_GATEWAY_WRAP="python bench/profile_gateway.py" ... -> profile_gateway.py PYTHON -m bastion serve ...

Only the event loop's thread is profiled (aiosqlite's thread is not); cProfile slows Python code
several times, so read where the time goes, not how much there is.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
from types import FrameType

profile = cProfile.Profile()


def start(_signum: int, _frame: FrameType | None) -> None:
    profile.enable()


def dump(_signum: int, _frame: FrameType | None) -> None:
    profile.disable()
    profile.dump_stats(os.environ["BENCH_PROFILE_OUT"])


if __name__ == "__main__":
    if sys.argv[2:3] != ["-m"]:
        raise SystemExit("usage: profile_gateway.py PYTHON -m MODULE ARGS...")
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, dump)
    module = sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
