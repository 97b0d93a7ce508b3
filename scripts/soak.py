"""Soak the runtime's crash recovery: kill -9 a service 20 times (or more) while events flow.

It runs the crash-recovery test with more kills, once or repeatedly, on a fresh embedded stack
each round, and stops at the first failure. The test suite does the same with 5 kills; this is
the longer run the issue asks for, kept out of the suite so that CI stays fast.

Usage: .venv/bin/python scripts/soak.py [--kills 20] [--rounds 1] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/integration/test_crash_recovery.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kill -9 this many times per round")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole scenario")
    parser.add_argument("--seed", help="seed of the kill moments (default: the clock, printed)")
    args = parser.parse_args()
    for round_number in range(1, args.rounds + 1):
        seed = args.seed or str(time.time_ns())
        print(f"round {round_number}/{args.rounds}: {args.kills} kills, seed {seed}", flush=True)
        env = {**os.environ, "XBUS_TEST_KILLS": str(args.kills), "XBUS_TEST_SEED": seed}
        started = time.monotonic()
        # the test's own timeout is for the suite's 5 kills; 20 kills take about four times as long
        command = [sys.executable, "-m", "pytest", TEST, "-q", "-s", "-p", "no:cacheprovider", "--timeout", "1800"]
        done = subprocess.run(command, cwd=ROOT, env=env)
        print(
            f"round {round_number}: {'passed' if done.returncode == 0 else 'FAILED'} "
            f"in {time.monotonic() - started:.0f}s",
            flush=True,
        )
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
