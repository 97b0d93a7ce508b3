"""The latest lag report as Prometheus metrics, on a registry of its own.

A custom collector rather than gauges set after each sample: every scrape is built from the
latest report alone, so a partition, group or topic that is no longer reported is no longer
exported (set gauges would keep its last value forever). Its own registry, because the lag of
every group is not a metric of the process that happens to compute it (an `xbus run` process's
/metrics stays about that process).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xbus.lag.model import LagReport
from xbus.monitor.sampler import LagSampler

PARTITION_LABELS = ["group", "topic", "partition"]


def lag_metrics(report: LagReport | None, failures: int = 0) -> Iterable[Metric]:
    """The metric families of one report (none but the failure count before the first sample)."""
    failed = CounterMetricFamily(
        "xbus_lag_sample_failures",
        "Lag samples that failed (broker or database unreachable) since the monitor started.",
    )
    failed.add_metric([], failures)
    if report is None:
        return [failed]
    lag = GaugeMetricFamily(
        "xbus_consumer_lag_messages",
        "Records of the partition the group has not consumed yet (log end minus committed offset).",
        labels=PARTITION_LABELS,
    )
    seconds = GaugeMetricFamily(
        "xbus_consumer_lag_seconds",
        "Age of the first record the group has not consumed yet (0 when caught up).",
        labels=PARTITION_LABELS,
    )
    status = GaugeMetricFamily(
        "xbus_consumer_status",
        "Status of the partition over the sample window: 0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP.",
        labels=PARTITION_LABELS,
    )
    loss = GaugeMetricFamily(
        "xbus_consumer_time_to_loss_seconds",
        "For a lagging partition of a topic with retention: seconds until retention deletes its oldest unconsumed "
        "record at the current rates.",
        labels=PARTITION_LABELS,
    )
    group_status = GaugeMetricFamily(
        "xbus_consumer_group_status", "Worst status of the group's partitions (0 OK ... 4 STOP).", labels=["group"]
    )
    for group in report.groups:
        group_status.add_metric([group.group], int(group.status))
        for partition in group.partitions:
            labels = [group.group, partition.lag.topic, str(partition.lag.partition)]
            lag.add_metric(labels, partition.lag.lag)
            seconds.add_metric(labels, partition.lag.lag_seconds)
            status.add_metric(labels, int(partition.status))
            if partition.time_to_loss_seconds is not None:
                loss.add_metric(labels, partition.time_to_loss_seconds)
    business = GaugeMetricFamily(
        "xbus_provisioning_oldest_open_seconds",
        "Age of the oldest provisioning flow not yet complete, per kind (0 when none is open).",
        labels=["kind"],
    )
    for kind, age in report.business.items():
        business.add_metric([kind], age or 0.0)
    taken = GaugeMetricFamily("xbus_lag_sample_timestamp_seconds", "Unix time the latest lag sample was taken.")
    taken.add_metric([], report.taken_at)
    return [lag, seconds, status, group_status, loss, business, taken, failed]


class LagCollector(Collector):
    def __init__(self, sampler: LagSampler) -> None:
        self.sampler = sampler

    def collect(self) -> Iterator[Metric]:
        yield from lag_metrics(self.sampler.latest, self.sampler.failures)


def lag_registry(sampler: LagSampler) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LagCollector(sampler))
    return registry
