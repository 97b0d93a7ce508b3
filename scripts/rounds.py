"""Rounds of one integration test, longer than the suite runs it: what soak.py and chaos.py share.

Each round runs the test in a pytest of its own (so a fresh embedded stack), with the script's
settings and a seed (given, or the clock's, printed), and the rounds stop at the first failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_rounds(
    test: str, rounds: int, seed: str | None, what: str, settings: Mapping[str, str], pytest_options: Sequence[str]
) -> int:
    """Run ``test`` ``rounds`` times with ``settings`` in its environment; pytest's exit code of
    the first failing round, or 0."""
    for round_number in range(1, rounds + 1):
        round_seed = seed or str(time.time_ns())
        print(f"round {round_number}/{rounds}: {what}, seed {round_seed}", flush=True)
        env = {**os.environ, **settings, "XBUS_TEST_SEED": round_seed}
        started = time.monotonic()
        command = [sys.executable, "-m", "pytest", test, "-q", "-s", "-p", "no:cacheprovider", *pytest_options]
        done = subprocess.run(command, cwd=ROOT, env=env)
        print(
            f"round {round_number}: {'passed' if done.returncode == 0 else 'FAILED'} "
            f"in {time.monotonic() - started:.0f}s",
            flush=True,
        )
        if done.returncode != 0:
            return done.returncode
    return 0
