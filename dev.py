"""Set up a virtual environment and run the demo or the tests: the only two commands a new machine needs.

Why a Python script and not a Makefile: a fresh machine is promised Python 3.11+ and nothing else.
Usage: ``python3 dev.py demo`` or ``python3 dev.py test [pytest args...]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".xosp-bus-installed"
#: The browser the lag page is tested in (tests/integration/test_lag_page.py): Debian's package, because
#: Playwright's own browser download needs a host this project cannot count on reaching.
CHROMIUM = Path("/usr/bin/chromium")
#: What checks docker-compose.yml without a Docker engine (tests/unit/test_compose_file.py): Debian's
#: docker-compose package, `docker-compose config`.
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")


def ensure_venv() -> None:
    """Create .venv and install the project with its test extras when pyproject.toml changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 the machine has
        sys.exit(f"xosp-bus needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    print("installing xosp-bus and its dependencies into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    STAMP.touch()


def ensure_kafka() -> None:
    """Fetch Apache Kafka for the embedded stack once, when Java 17+ and mvn make that possible.

    Without them the project runs on Tansu, the broker its wheels bring; XBUS_EMBEDDED_BROKER=tansu
    asks for Tansu and fetches nothing."""
    if os.environ.get("XBUS_EMBEDDED_BROKER", "auto").strip().lower() == "tansu":
        return
    sys.path.insert(0, str(ROOT))
    from infrastructure.embedded import kafka_distribution  # the standard library only: no .venv needed

    expected = kafka_distribution.expected_distribution()
    if (expected.home / kafka_distribution.COMPLETE_MARKER).exists():
        return
    problem = kafka_distribution.missing_tools()
    if problem:
        print(f"Apache Kafka is not installed: {problem}; the embedded stack runs Tansu, in memory", flush=True)
        return
    print(f"fetching Apache Kafka {expected.version} with mvn into {expected.home} (once)", flush=True)
    try:
        kafka_distribution.install()
    except RuntimeError as error:
        print(f"{error}\nthe embedded stack runs Tansu, in memory", flush=True)


def ensure_browser() -> None:
    """Install Debian's chromium when it is missing and apt-get and root make that possible."""
    ensure_debian_package("chromium", CHROMIUM, "the lag page test")


def ensure_compose() -> None:
    """Install Debian's docker-compose when it is missing and apt-get and root make that possible."""
    ensure_debian_package("docker-compose", DOCKER_COMPOSE, "the docker-compose.yml test")


def ensure_debian_package(package: str, path: Path, needed_by: str) -> None:
    """Install a Debian package when the file it provides is missing; say which test fails if it cannot be."""
    if path.exists():
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        print(f"{path} is missing; installing it needs apt-get and root: {needed_by} will fail", flush=True)
        return
    print(f"{path} is missing: installing Debian's {package} with apt-get (for {needed_by})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, env=env).returncode != 0:
        print("apt-get install failed: updating the package lists and trying again", flush=True)
        subprocess.run([apt, "update", "-q"], env=env)
        subprocess.run(install, env=env)
    if not path.exists():
        print(f"could not install {package} ({path} is still missing): {needed_by} will fail", flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    ensure_venv()
    ensure_kafka()
    if argv[0] == "test":
        ensure_browser()
        ensure_compose()
    command, rest = argv[0], argv[1:]
    commands = {"demo": [str(BIN / "xbus"), "demo"], "test": [str(BIN / "python"), "-m", "pytest"]}
    args = [*commands[command], *rest]
    return subprocess.run(args, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
