"""Which embedded broker runs: Apache Kafka where it is installed, otherwise Tansu (XBUS_EMBEDDED_BROKER).

Apache Kafka is what users run in production and keeps its log on disk; Tansu needs nothing but
this project's wheels and keeps everything in memory. ``auto`` takes Apache Kafka when dev.py has
fetched it (infrastructure/embedded/kafka_distribution.py) and a Java 17+ is on the PATH.
"""

from __future__ import annotations

import signal
from pathlib import Path

from infrastructure.brokers import BrokerKind
from infrastructure.embedded import tansu
from infrastructure.embedded.apache_kafka import start_apache_kafka
from infrastructure.embedded.kafka_distribution import expected_distribution, installed_distribution, missing_tools
from infrastructure.embedded.processes import HOST, BrokerProcess, pid_alive, port_open, stop_process
from infrastructure.errors import StackError
from infrastructure.settings import EmbeddedBrokerChoice

#: A controlled shutdown moves nothing on one node, but closes every log cleanly: a few seconds.
KAFKA_STOP_TIMEOUT = 60.0


def choose_broker(choice: EmbeddedBrokerChoice) -> BrokerKind:
    """The broker kind to start for XBUS_EMBEDDED_BROKER; ``kafka`` when it cannot run is an error."""
    if choice is EmbeddedBrokerChoice.TANSU:
        return BrokerKind.TANSU
    if installed_distribution() is not None:
        return BrokerKind.APACHE_KAFKA
    if choice is EmbeddedBrokerChoice.KAFKA:
        expected = expected_distribution()
        reason = missing_tools(maven=False) or f"it was never fetched into {expected.home}"
        raise StackError(
            f"XBUS_EMBEDDED_BROKER=kafka, but Apache Kafka {expected.version} cannot run here: {reason}; "
            "`python3 dev.py test` fetches it (Java 17+ and mvn), or set XBUS_EMBEDDED_BROKER=tansu"
        )
    return BrokerKind.TANSU


def broker_version(kind: BrokerKind) -> str:
    return expected_distribution().version if kind is BrokerKind.APACHE_KAFKA else tansu.VERSION


def start_broker(kind: BrokerKind, data_dir: Path, port: int, controller_port: int) -> BrokerProcess:
    if kind is BrokerKind.TANSU:
        return tansu.start_tansu(data_dir, port)
    distribution = installed_distribution()
    if distribution is None:
        raise StackError(
            f"Apache Kafka is no longer installed in {expected_distribution().home}; run `python3 dev.py test`"
        )
    return start_apache_kafka(distribution, data_dir, port, controller_port)


def stop_broker(kind: BrokerKind | None, pid: int) -> bool:
    """SIGTERM: Apache Kafka shuts down in a controlled way (logs closed, no recovery on the next
    start) and is given time for it; Tansu just exits."""
    timeout = KAFKA_STOP_TIMEOUT if kind is BrokerKind.APACHE_KAFKA else 15.0
    return stop_process(pid, signal.SIGTERM, timeout=timeout)


def broker_running(pid: int | None, port: int | None) -> bool:
    return pid_alive(pid) and port is not None and port_open(HOST, port)
