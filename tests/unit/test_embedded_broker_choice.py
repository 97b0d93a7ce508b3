"""Which embedded broker starts: XBUS_EMBEDDED_BROKER against what this machine has installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infrastructure.brokers import BrokerKind, broker_traits
from infrastructure.embedded.broker import choose_broker
from infrastructure.embedded.kafka_distribution import (
    COMPLETE_MARKER,
    expected_distribution,
    installed_distribution,
    java_major_version,
    kafka_version,
)
from infrastructure.embedded.processes import free_port
from infrastructure.errors import BrokerUnavailable, StackError
from infrastructure.settings import EmbeddedBrokerChoice, load_settings


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def fetched(cache: Path) -> None:
    """What dev.py leaves behind: the jars and, last, the marker."""
    home = expected_distribution().home
    assert home.is_relative_to(cache)
    (home / "lib").mkdir(parents=True)
    (home / COMPLETE_MARKER).write_text(kafka_version())


def test_the_pinned_version_comes_from_the_maven_descriptor() -> None:
    assert kafka_version() == "4.1.1"
    assert expected_distribution().home.name == "kafka-4.1.1"


def test_an_interrupted_download_is_not_a_distribution(empty_cache: Path) -> None:
    (expected_distribution().home / "lib").mkdir(parents=True)  # jars without the marker
    assert installed_distribution() is None
    assert choose_broker(EmbeddedBrokerChoice.AUTO) is BrokerKind.TANSU


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a java on the PATH, as Apache Kafka does")
def test_auto_takes_apache_kafka_once_it_is_fetched(empty_cache: Path) -> None:
    fetched(empty_cache)
    assert installed_distribution() == expected_distribution()
    assert choose_broker(EmbeddedBrokerChoice.AUTO) is BrokerKind.APACHE_KAFKA
    assert choose_broker(EmbeddedBrokerChoice.TANSU) is BrokerKind.TANSU


def test_asking_for_kafka_where_it_cannot_run_says_why_and_what_to_do(empty_cache: Path) -> None:
    with pytest.raises(StackError, match=r"never fetched into .*dev.py test.*XBUS_EMBEDDED_BROKER=tansu"):
        choose_broker(EmbeddedBrokerChoice.KAFKA)


def test_a_java_without_a_version_line_or_too_old_is_not_enough(tmp_path: Path) -> None:
    old = tmp_path / "java8"
    old.write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    old.chmod(0o755)
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    silent.chmod(0o755)
    assert java_major_version(str(old)) == 8
    assert java_major_version(str(silent)) is None
    assert java_major_version(str(tmp_path / "none")) is None


async def test_a_broker_that_does_not_answer_is_reported_and_not_taken_for_either_kind() -> None:
    settings = load_settings(kafka_request_timeout_ms=2_000)
    nowhere = f"127.0.0.1:{free_port()}"
    for _ in range(2):  # asked again, not answered from a guess kept the first time
        with pytest.raises(BrokerUnavailable, match=f"Kafka at {nowhere} did not answer"):
            await broker_traits(settings, nowhere)
