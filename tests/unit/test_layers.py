"""The house keeps its shape: each layer imports only the layers below it, no service imports
another, and no package's modules import each other in a cycle (the contracts are in
pyproject.toml, drawn in docs/architecture.md).

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
    assert "3 kept, 0 broken" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("module", "upward", "contract", "named"),
    [
        # the runtime read its settings, catalogue and errors from the applications' package
        ("consumers/runtime/service.py", "import xbus.cli.app", "Layers point down", "xbus.cli.app"),
        ("producers/publisher.py", "import xbus.demo", "Layers point down", "xbus.demo"),
        # the AsyncAPI document was written by schemas, from the catalogue above it
        ("schemas/types.py", "import infrastructure.catalogue", "Layers point down", "infrastructure.catalogue"),
        ("infrastructure/settings.py", "import producers", "Layers point down", "producers"),
        ("exchanges/plugins.py", "import consumers.runtime.service", "Layers point down", "consumers.runtime.service"),
        ("producers/publisher.py", "import exchanges.plugins", "Layers point down", "exchanges.plugins"),
        (
            "consumers/registry/settlement.py",
            "import consumers.oms.queries",
            "none imports another",
            "consumers.oms.queries",
        ),
        (
            "consumers/runtime/runner.py",
            "import consumers.oms.service",
            "Services stand on the runtime",
            "consumers.oms.service",
        ),
        # the runtime's cycle, once hidden behind TYPE_CHECKING: the types now live where they belong
        (
            "consumers/runtime/service.py",
            "import consumers.runtime.processor",
            "No import cycles",
            ".service -> .processor",
        ),
        ("xbus/monitor/app.py", "import xbus.api.app", "No import cycles", ".monitor -> .api"),
    ],
)
def test_an_upward_import_put_back_breaks_a_contract(
    tmp_path: Path, module: str, upward: str, contract: str, named: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a") as source:
        source.write(f"\n{upward}  # put back by the test\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert f"{contract}" in done.stdout and "BROKEN" in done.stdout, done.stdout
    assert named in done.stdout, done.stdout
