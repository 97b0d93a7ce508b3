"""The house keeps its shape: each layer imports only the layers below it, and no service imports
another (the contracts are in pyproject.toml, drawn in docs/architecture.md).

The contracts are checked on the code as it is, and then on copies of it with one upward import
put back, each an import the code had before the layers were drawn (or its like), so a contract
that stopped catching them would fail here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ["schemas", "infrastructure", "producers", "exchanges", "consumers", "xbus"]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # the copy under test comes first on the path, before the editable install's finder
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_layer_imports_only_the_layers_below_it_and_no_service_imports_another() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("module", "upward", "contract"),
    [
        # the runtime read its settings, catalogue and errors from the applications' package
        ("consumers/runtime/service.py", "import xbus.cli.app", "Layers point down"),
        ("producers/publisher.py", "import xbus.demo", "Layers point down"),
        # the AsyncAPI document was written by schemas, from the catalogue above it
        ("schemas/types.py", "import infrastructure.catalogue", "Layers point down"),
        ("infrastructure/settings.py", "import producers", "Layers point down"),
        ("exchanges/plugins.py", "import consumers.runtime.service", "Layers point down"),
        ("producers/publisher.py", "import exchanges.plugins", "Layers point down"),
        ("consumers/registry/handlers.py", "import consumers.oms.queries", "none imports another"),
        ("consumers/runtime/runner.py", "import consumers.oms.service", "Services stand on the runtime"),
    ],
)
def test_an_upward_import_put_back_breaks_a_contract(tmp_path: Path, module: str, upward: str, contract: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a") as source:
        source.write(f"\n{upward}  # put back by the test\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert f"{contract}" in done.stdout and "BROKEN" in done.stdout, done.stdout
    assert upward.removeprefix("import ") in done.stdout, done.stdout
