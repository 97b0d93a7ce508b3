"""Prometheus metrics of the runtime, labelled by service.

Defined once per process on the default registry, so that `xbus run --all` serves every service
of the process on one port and a scrape needs no service discovery beyond the process.
"""

from __future__ import annotations

from contextlib import suppress

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "xbus_events",
    "Events read by a service, by what became of them: applied, duplicate (skipped by the inbox), "
    "dead_lettered, parked (behind a dead-lettered event of the same key), pending (held until its "
    "prerequisite is applied), released (from parking), ignored (a type the service does not handle).",
    ["service", "outcome"],
)
BATCH_FAILURES = Counter(
    "xbus_batch_failures",
    "Partition batches that failed on the infrastructure (PostgreSQL, Kafka) and were retried.",
    ["service", "error"],
)
BATCHES_REDONE = Counter(
    "xbus_batches_redone",
    "Transactions rolled back and their records applied again, by reason: no_progress (a group of "
    "partitions in which no statement completed for XBUS_BATCH_SPLIT_SECONDS; its partitions are "
    "then applied one by one), unusual (the fast path met something it does not handle: applied "
    "record by record), record_broke_batch (an error no rule covers: applied one record per "
    "transaction). Each is logged with its reason.",
    ["service", "reason"],
)
BATCH_DURATION = Histogram(
    "xbus_batch_duration_seconds",
    "Time to apply one partition batch in one transaction, retries included.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OUTBOX_BACKLOG = Gauge(
    "xbus_outbox_backlog",
    "Outbox rows (follow-up events and dead letters) recorded and not yet acknowledged by Kafka.",
    ["service"],
)
OUTBOX_PUBLISHED = Counter("xbus_outbox_published", "Outbox rows published to Kafka.", ["service"])
OUTBOX_LATENCY = Histogram(
    "xbus_outbox_publish_latency_seconds",
    "From the start of the transaction that recorded an outbox row to Kafka's acknowledgement of it.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PARTITION_LAG = Gauge(
    "xbus_partition_lag_messages",
    "Log-end offset minus committed offset of each partition this process owns.",
    ["service", "topic", "partition"],
)
PARTITION_STALLED = Gauge(
    "xbus_partition_stalled",
    "1 while a partition has lag and its committed offset has not moved for the stall time.",
    ["service", "topic", "partition"],
)
SECONDS_SINCE_COMMIT = Gauge(
    "xbus_seconds_since_commit", "Seconds since this service last committed offsets.", ["service"]
)


def forget_partition(service: str, topic: str, partition: int) -> None:
    """Drop a revoked partition's series, so a scrape shows only what this process owns."""
    for gauge in (PARTITION_LAG, PARTITION_STALLED):
        with suppress(KeyError):
            gauge.remove(service, topic, str(partition))
