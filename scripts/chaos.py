"""Chaos, longer than the suite's: the demo while services, PostgreSQL and the broker die at random.

It runs tests/integration/test_chaos.py for ``--seconds`` of strikes (the suite runs 20), once or
repeatedly, each round on a broker and a PostgreSQL of its own, with malformed records among the
demo's events, and stops at the first failure. Broker kills happen on Apache Kafka only (Tansu
keeps nothing across a restart); choose the broker with XBUS_EMBEDDED_BROKER as for the suite.
At the end of each round every flow has completed once, no order is open, the OMS's books equal
the registry's, each deposit was credited once, and every malformed record is a dead letter with
its reason in every service that reads it.

Usage: .venv/bin/python scripts/chaos.py [--seconds 300] [--rounds 1] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/integration/test_chaos.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to strike, per round")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole scenario")
    parser.add_argument("--seed", help="seed of the strikes (default: the clock, printed)")
    args = parser.parse_args()
    for round_number in range(1, args.rounds + 1):
        seed = args.seed or str(time.time_ns())
        print(f"round {round_number}/{args.rounds}: {args.seconds:g} s of strikes, seed {seed}", flush=True)
        env = {**os.environ, "XBUS_CHAOS_SECONDS": str(args.seconds), "XBUS_TEST_SEED": seed}
        started = time.monotonic()
        timeout = str(int(args.seconds) + 900)
        command = [
            sys.executable,
            "-m",
            "pytest",
            TEST,
            "-q",
            "-s",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            "--timeout",
            timeout,
        ]
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
