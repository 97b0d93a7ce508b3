"""One-token mutants of a rule module's code, and which of them its tests kill.

Each mutant changes one token of the module's code (never its strings or comments): a comparison
turned round, `and` for `or`, `is None` for `is not None`, a state for another, a sign, a
`return` dropped. The tests given are run against each mutant in turn; a mutant they all pass
"survived", and is printed with its line, for a person to judge: a test is missing, or the
mutant means the same as the code (a deposit is never zero, so `< 0` and `<= 0` agree on it).
The module is restored at the end, whatever happens. The project holds rule modules to 90 %.

Usage: .venv/bin/python scripts/mutants.py consumers/registry/accounts.py tests/unit/test_registry_handlers.py
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

#: (what, what it becomes): each occurrence in the code is one mutant.
SWAPS = [
    (" is not None", " is None"),
    (" is None", " is not None"),
    (" == ", " != "),
    (" != ", " == "),
    (" < ", " <= "),
    (" > ", " >= "),
    (" <= ", " < "),
    (" >= ", " > "),
    (" and ", " or "),
    (" or ", " and "),
    (" not in ", " in "),
    ("if not ", "if "),
    ("return True", "return False"),
    ("return False", "return True"),
    ("True", "False"),
    ("False", "True"),
    ("return\n", "pass\n"),
    (" + ", " - "),
    (" - ", " + "),
    ("-event.", "event."),
    ("event.reason", "None"),
    ("Decimal(0)", "Decimal(1)"),
    ("AccountState.CLOSED", "AccountState.SUSPENDED"),
    ("AccountState.SUSPENDED", "AccountState.ACTIVE"),
    ("AccountState.ACTIVE", "AccountState.SUSPENDED"),
]


def prose_spans(source: str) -> list[tuple[int, int]]:
    """Where the strings and comments are, as character offsets: no mutant is made there."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    spans = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_START", -1)):
            spans.append((starts[token.start[0] - 1] + token.start[1], starts[token.end[0] - 1] + token.end[1]))
    return spans


def mutants(source: str) -> list[tuple[str, int]]:
    """Each distinct mutant, with the offset of its change."""
    prose = prose_spans(source)
    found: dict[str, int] = {}
    for before, after in SWAPS:
        for match in re.finditer(re.escape(before), source):
            if any(start <= match.start() < end for start, end in prose):
                continue
            mutant = source[: match.start()] + after + source[match.end() :]
            found.setdefault(mutant, match.start())
    return list(found.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", type=Path)
    parser.add_argument("tests", nargs="+")
    args = parser.parse_args()
    source = args.module.read_text()
    made = mutants(source)
    killed = 0
    try:
        for number, (mutant, offset) in enumerate(made, 1):
            args.module.write_text(mutant)
            run = [sys.executable, "-m", "pytest", *args.tests, "-q", "-x", "-n", "0", "-p", "no:cacheprovider"]
            if subprocess.run(run, capture_output=True).returncode != 0:
                killed += 1
            else:
                line = mutant.splitlines()[source.count("\n", 0, offset)].strip()
                print(f"survived ({number}/{len(made)}): {line}", flush=True)
    finally:
        args.module.write_text(source)
    print(f"{args.module}: {killed} of {len(made)} mutants killed ({100 * killed / max(len(made), 1):.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
