"""The code holds itself to ruff's rules and format and to mypy, in the suite: CI runs only the
test command, so a check that lives elsewhere is a check nobody runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

#: The packages mypy checks (tests are left out: fixtures and hypothesis strategies type poorly).
TYPED = ["schemas", "infrastructure", "producers", "exchanges", "consumers", "xbus"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_would_change_nothing() -> None:
    done = _run("ruff", "format", "--check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing(tmp_path: Path) -> None:
    done = _run("mypy", "--cache-dir", str(tmp_path / "mypy"), *TYPED)
    assert done.returncode == 0, done.stdout + done.stderr
