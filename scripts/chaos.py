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
import sys

from rounds import run_rounds

TEST = "tests/integration/test_chaos.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to strike, per round")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole scenario")
    parser.add_argument("--seed", help="seed of the strikes (default: the clock, printed)")
    args = parser.parse_args()
    settings = {"XBUS_CHAOS_SECONDS": str(args.seconds)}
    options = ["-n", "0", "--timeout", str(int(args.seconds) + 900)]
    return run_rounds(TEST, args.rounds, args.seed, f"{args.seconds:g} s of strikes", settings, options)


if __name__ == "__main__":
    sys.exit(main())
