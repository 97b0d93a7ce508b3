"""Soak the runtime's crash recovery: kill -9 a service 20 times (or more) while events flow.

It runs the crash-recovery test with more kills, once or repeatedly, on a fresh embedded stack
each round, and stops at the first failure. The test suite does the same with 5 kills; this is
the longer run the issue asks for, kept out of the suite so that CI stays fast.

Usage: .venv/bin/python scripts/soak.py [--kills 20] [--rounds 1] [--seed N]
"""

from __future__ import annotations

import argparse
import sys

from rounds import run_rounds

TEST = "tests/integration/test_crash_recovery.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kill -9 this many times per round")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole scenario")
    parser.add_argument("--seed", help="seed of the kill moments (default: the clock, printed)")
    args = parser.parse_args()
    # the test's own timeout is for the suite's 5 kills; 20 kills take about four times as long
    settings = {"XBUS_TEST_KILLS": str(args.kills)}
    return run_rounds(TEST, args.rounds, args.seed, f"{args.kills} kills", settings, ["--timeout", "1800"])


if __name__ == "__main__":
    sys.exit(main())
