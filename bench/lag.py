"""`LagWatcher.report` for 100 groups x 100 partitions against the raw aiokafka calls it needs.

One 100-partition topic gets a few records per partition, and 100 groups get committed offsets
on every partition, each at its own offset (some caught up, most a few records behind), moved
with ``infrastructure.groups.commit_offsets`` (no joining). Then, in alternating rounds, both sides compute
lag for every group and partition, with clients kept open across rounds as a monitor keeps them:

- ours: ``LagWatcher.report()``: groups, descriptions, partitions, committed offsets, log start,
  true log end and the timestamp of each group's first unconsumed record, the status judgement
  and the provisioning business lag;
- raw: what that needs at the least, by hand: ListGroups, one OffsetFetch per group (partitions
  named, as the embedded broker requires), and one fetch pass from each partition's lowest
  committed offset, which brings the high watermark and every record's timestamp.

Medians are reported with the ratio (ours / raw; near 1: no overhead of ours) and whether ours is
under the target of 1 s.

Usage: python bench/lag.py [--groups 100] [--partitions 100] [--records 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the checkout's root is not on sys.path when this file runs as a script
    sys.path.append(str(ROOT))

from broker_option import add_broker_option, broker_name, choose_broker  # noqa: E402

from infrastructure.endpoints import Endpoints, connect  # noqa: E402
from infrastructure.groups import commit_offsets  # noqa: E402
from infrastructure.kafka_clients import acks_all_producer, admin_client, plain_consumer  # noqa: E402
from infrastructure.logs import configure_logging  # noqa: E402
from infrastructure.settings import Settings, load_settings  # noqa: E402
from xbus.lag.watch import LagOptions, LagWatcher  # noqa: E402

TARGET_SECONDS = 1.0


async def prepare(settings: Settings, bootstrap: str, groups: int, partitions: int, records: int) -> list[str]:
    """The topic, its records and the groups' offsets; returns the group ids."""
    topic = settings.topic("bench.lag")
    async with admin_client(settings, bootstrap) as admin:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    async with acks_all_producer(settings, bootstrap) as producer:
        sent = [
            await producer.send(topic, b'{"n": %d}' % n, key=b"k", partition=p)
            for p in range(partitions)
            for n in range(records)
        ]
        await asyncio.gather(*sent)
    names = [settings.group(f"bench.g{g:03d}") for g in range(groups)]
    offsets = [
        {TopicPartition(topic, p): (g * 7 + p * 3) % (records + 1) for p in range(partitions)} for g in range(groups)
    ]
    for first in range(0, groups, 10):  # ten at a time: each is a short-lived consumer
        await asyncio.gather(
            *(
                commit_offsets(settings, bootstrap, name, o)
                for name, o in zip(names[first : first + 10], offsets[first : first + 10], strict=True)
            )
        )
    return names


async def raw_lag(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, prefix: str, partitions: list[TopicPartition]
) -> int:
    """Committed offsets, high watermarks and first-unconsumed timestamps by hand; returns the total lag."""
    groups = [group for group, *_ in await admin.list_consumer_groups() if group.startswith(prefix)]
    committed = await asyncio.gather(
        *(admin.list_consumer_group_offsets(group, partitions=partitions) for group in groups)
    )
    lowest = {tp: min(answer[tp].offset for answer in committed) for tp in partitions}
    consumer.assign(partitions)
    for tp, offset in lowest.items():
        consumer.seek(tp, offset)
    timestamps: dict[TopicPartition, dict[int, int]] = {tp: {} for tp in partitions}
    ends: dict[TopicPartition, int] = {}
    while len(ends) < len(partitions):
        for tp, batch in (await consumer.getmany(*[tp for tp in partitions if tp not in ends], timeout_ms=50)).items():
            timestamps[tp].update((r.offset, r.timestamp) for r in batch)
        for tp in partitions:
            if tp not in ends and (highwater := consumer.highwater(tp)) is not None:
                ends[tp] = highwater
    return sum(ends[tp] - answer[tp].offset for answer in committed for tp in partitions)


async def timed(work: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


async def main(groups: int, partitions: int, records: int, rounds: int) -> None:
    base = load_settings()
    configure_logging(base.log_format, base.log_level if "XBUS_LOG_LEVEL" in os.environ else "warning")
    endpoints: Endpoints = await connect(base)
    bootstrap = endpoints.kafka_bootstrap
    settings = base.model_copy(update={"topic_prefix": f"benchlag{uuid.uuid4().hex[:8]}.", "group_prefix": None})
    names = await prepare(settings, bootstrap, groups, partitions, records)
    tps = [TopicPartition(settings.topic("bench.lag"), p) for p in range(partitions)]
    ours_times: list[float] = []
    raw_times: list[float] = []
    async with (
        LagWatcher(settings, endpoints, LagOptions()) as watcher,
        admin_client(settings, bootstrap) as admin,
        plain_consumer(settings, bootstrap) as consumer,
    ):

        async def ours() -> int:
            report = await watcher.report()
            assert len(report.groups) == len(names), [g.group for g in report.groups]
            assert all(len(g.partitions) == partitions for g in report.groups)
            return sum(g.lag for g in report.groups)

        async def raw() -> int:
            return await raw_lag(admin, consumer, settings.group(""), tps)

        assert await ours() == await raw()  # warm-up (connections, metadata, retention cache), same answer
        for round_ in range(rounds):
            sides = [(ours, ours_times), (raw, raw_times)]
            for work, times in sides if round_ % 2 == 0 else reversed(sides):
                elapsed, _ = await timed(work)
                times.append(elapsed)
    ours_s, raw_s = statistics.median(ours_times), statistics.median(raw_times)
    figures = {
        "groups": groups,
        "partitions": partitions,
        "records_per_partition": records,
        "rounds": rounds,
        "ours_ms": round(ours_s * 1000, 1),
        "raw_ms": round(raw_s * 1000, 1),
        "ratio": round(ours_s / raw_s, 2),
        "ratio_rounds": [round(o / r, 2) for o, r in zip(ours_times, raw_times, strict=True)],
        "target_s": TARGET_SECONDS,
        "target_met": ours_s < TARGET_SECONDS,
    }
    print(json.dumps({"broker": broker_name(endpoints), "lag": figures}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--records", type=int, default=20, help="records per partition")
    parser.add_argument("--rounds", type=int, default=5)
    add_broker_option(parser)
    args = parser.parse_args()
    choose_broker(args)
    asyncio.run(main(args.groups, args.partitions, args.records, args.rounds))
