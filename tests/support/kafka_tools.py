"""Kafka's own `kafka-consumer-groups`, run from the embedded stack's jars: the reference our lag and
replay are held to (what `kafka-consumer-groups.sh` runs is this class)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from infrastructure.embedded.kafka_distribution import installed_distribution

CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def consumer_groups(bootstrap: str, *args: str) -> str:
    """`kafka-consumer-groups --bootstrap-server BOOTSTRAP ARGS...`; what it printed, its warnings
    included (a clamped offset is a warning of its logger, which logs errors only unless told)."""
    distribution = installed_distribution()
    java = shutil.which("java")
    assert distribution is not None and java, "Apache Kafka is not installed: `python3 dev.py test` fetches it"
    tool = [java, "-Dlog4j2.level=WARN", "-cp", distribution.classpath, CONSUMER_GROUP_COMMAND]
    done = subprocess.run(
        [*tool, "--bootstrap-server", bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kafka-consumer-groups {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@dataclass(frozen=True)
class DescribedPartition:
    """One row of `--describe`: offsets and lag as Kafka's tool reports them."""

    topic: str
    partition: int
    current: int | None
    log_end: int
    lag: int | None
    consumer_id: str | None


def describe(bootstrap: str, group: str) -> list[DescribedPartition]:
    """`--describe --group GROUP`, parsed (``-`` is None)."""
    rows = []
    for line in consumer_groups(bootstrap, "--describe", "--group", group).splitlines():
        fields = line.split()
        if len(fields) < 7 or fields[0] != group:  # the header, blank lines and notes
            continue
        _, topic, partition, current, log_end, lag, consumer = fields[:7]
        rows.append(
            DescribedPartition(
                topic,
                int(partition),
                _number(current),
                int(log_end),
                _number(lag),
                None if consumer == "-" else consumer,
            )
        )
    return rows


def _number(text: str) -> int | None:
    return None if text == "-" else int(text)
