"""The embedded Apache Kafka: one KRaft node (broker and controller in one JVM) with its log on disk.

Its storage is formatted once, under ``<data dir>/kafka/logs``; records, topics, consumer groups
and committed offsets survive a stop, a restart and a ``kill -9`` (the log is recovered on start).
The settings that matter to the bus are those of docker-compose.yml (no topic auto-creation,
internal topics with one replica on one broker, groups that form at once); the embedded one also
accepts session timeouts down to 1 s, which the tests use to move partitions quickly.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from infrastructure.embedded.kafka_distribution import KafkaDistribution
from infrastructure.embedded.processes import HOST, BrokerProcess, start_detached, tail
from infrastructure.errors import StackError

#: The JVM's heap: bounded, so that a test machine holds a broker per test worker with room to spare.
HEAP = "512m"
JVM_OPTIONS = [f"-Xms{HEAP}", f"-Xmx{HEAP}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
#: Kafka's own broker logs: warnings and above, with its start and stop lines kept.
LOG4J2 = """\
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.shutdown.name = kafka.server.BrokerServer
logger.shutdown.level = INFO
"""


def server_properties(log_dirs: Path, port: int, controller_port: int) -> str:
    """The node's configuration; rewritten at each start, so that ports may change between runs."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "log.dirs": str(log_dirs),
        # as docker-compose.yml: topics come from topics.yaml only, never from a typo
        "auto.create.topics.enable": "false",
        # one broker: every internal topic has one replica
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Kafka refuses sessions under 6 s by default; tests kill members and want their partitions back soon
        "group.min.session.timeout.ms": "1000",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def start_apache_kafka(
    distribution: KafkaDistribution, data_dir: Path, port: int, controller_port: int, timeout: float = 90.0
) -> BrokerProcess:
    """Format the node's storage if it never was, start the JVM detached, and wait until it listens."""
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "java is not on the PATH: Apache Kafka cannot start (XBUS_EMBEDDED_BROKER=tansu runs without it)"
        )
    home = data_dir / "kafka"
    log_dirs = home / "logs"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "server.properties"
    config.write_text(server_properties(log_dirs, port, controller_port))
    log4j = home / "log4j2.properties"
    log4j.write_text(LOG4J2)
    log = data_dir / "kafka.log"
    classpath = [f"-Dlog4j2.configurationFile={log4j}", "-cp", distribution.classpath]
    if not (log_dirs / "meta.properties").exists():
        _format([java, *classpath], config, log)
    command = [java, *JVM_OPTIONS, *classpath, BROKER_MAIN, str(config)]
    process = start_detached(command, log, "Apache Kafka", port, timeout)
    return BrokerProcess(pid=process.pid, port=port, log=log, controller_port=controller_port)


def _format(java_command: list[str], config: Path, log: Path) -> None:
    """Format the node's storage with a new cluster id: once in the life of a data directory."""
    cluster_id = _cluster_id()
    done = subprocess.run(
        [*java_command, STORAGE_TOOL, "format", "--cluster-id", cluster_id, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    with log.open("a") as log_file:
        log_file.write(done.stdout[-2000:] + done.stderr[-2000:])
    if done.returncode != 0:
        raise StackError(f"formatting Apache Kafka's storage failed ({config}):\n{tail(log)}")


def _cluster_id() -> str:
    """16 random bytes in URL-safe base64 without padding, never starting with "-" (a command line
    would read it as an option): what `StorageTool random-uuid` makes, without a JVM start."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate
