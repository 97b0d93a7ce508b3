"""Apache Kafka's jars for the embedded stack: where they are kept, whether they are there, how to get them.

The version is the one pinned in ``kafka/pom.xml`` beside this file. ``dev.py`` gathers the jars
once with Maven into a cache outside the checkout (``~/.cache/xosp-bus/kafka-<version>/lib``, or
under ``$XDG_CACHE_HOME``), so that every clone of the project shares them and later runs need no
network. This module uses the standard library only: ``dev.py`` imports it before the virtual
environment exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
#: Written last by :func:`install`: a cache without it is an interrupted download, not a distribution.
COMPLETE_MARKER = "installed"
MINIMUM_JAVA = 17
_MAVEN_NAMESPACE = {"m": "http://maven.apache.org/POM/4.0.0"}


def kafka_version() -> str:
    """The Kafka version the project pins (``kafka.version`` in the descriptor)."""
    version = ElementTree.parse(POM).getroot().find("m:properties/m:kafka.version", _MAVEN_NAMESPACE)
    if version is None or not version.text:
        raise RuntimeError(f"{POM} names no kafka.version")
    return version.text.strip()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xosp-bus"


@dataclass(frozen=True)
class KafkaDistribution:
    version: str
    home: Path

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    @property
    def classpath(self) -> str:
        return str(self.lib / "*")


def expected_distribution() -> KafkaDistribution:
    version = kafka_version()
    return KafkaDistribution(version, cache_root() / f"kafka-{version}")


def installed_distribution() -> KafkaDistribution | None:
    """The pinned Kafka if its download completed and a Java that runs it is on the PATH."""
    distribution = expected_distribution()
    if not (distribution.home / COMPLETE_MARKER).exists() or missing_tools(maven=False):
        return None
    return distribution


def java_major_version(java: str) -> int | None:
    """The major version ``java -version`` reports (``17`` for "17.0.15", ``8`` for "1.8.0")."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def missing_tools(*, maven: bool = True) -> str | None:
    """What keeps this machine from running (and, with ``maven``, fetching) Apache Kafka, in words; None if nothing."""
    java = shutil.which("java")
    if java is None:
        return f"java is not on the PATH (Apache Kafka needs Java {MINIMUM_JAVA}+)"
    major = java_major_version(java)
    if major is None or major < MINIMUM_JAVA:
        return f"{java} is Java {major or 'of an unknown version'}; Apache Kafka needs Java {MINIMUM_JAVA}+"
    if maven and shutil.which("mvn") is None:
        return "mvn is not on the PATH (it fetches Apache Kafka from Maven Central)"
    return None


def install() -> KafkaDistribution:
    """Gather the pinned Kafka's runtime jars into the cache with Maven; a no-op when they are there.

    The jars go to a temporary folder beside the cache and are renamed into place only when
    Maven succeeded, so an interrupted download never looks like a distribution."""
    distribution = expected_distribution()
    if (distribution.home / COMPLETE_MARKER).exists():
        return distribution
    distribution.home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"kafka-{distribution.version}.", dir=distribution.home.parent))
    try:
        done = subprocess.run(
            [
                "mvn",
                "--batch-mode",
                "--quiet",
                "--file",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging / 'lib'}",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mvn could not fetch Apache Kafka {distribution.version}:\n{done.stdout[-3000:]}")
        (staging / COMPLETE_MARKER).write_text(distribution.version + "\n")
        shutil.rmtree(distribution.home, ignore_errors=True)
        staging.rename(distribution.home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return distribution
