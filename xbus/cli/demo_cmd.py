"""`xbus demo`: start the stack, apply topics, publish the sample scenario, show what landed where."""

from __future__ import annotations

from collections import Counter, defaultdict

from rich.table import Table

from producers import Published, Publisher
from xbus.cli.common import err, out, run, settings
from xbus.demo import demo_events
from xbus.errors import XbusError
from xbus.platform import apply_catalogue, connect, load_catalogue, topic_reader
from xbus.reader import read_topic, topic_partitions


def demo() -> None:
    """Run the sample scenario on the embedded stack (or the configured Kafka)."""
    run(_demo())


async def _demo() -> None:
    config = settings()
    endpoints = await connect(config)
    err.print(f"kafka {endpoints.kafka_bootstrap}, postgres {endpoints.database_url}")
    report = await apply_catalogue(config, endpoints.kafka_bootstrap)
    err.print(f"topics: {len(report.created)} created, {len(report.existing)} already present")
    async with Publisher(config, endpoints.kafka_bootstrap, load_catalogue(config)) as publisher:
        results = await publisher.publish_many(demo_events())
    failed = [r for r in results if not isinstance(r, Published)]
    if failed:
        raise XbusError(f"{len(failed)} demo events were not published: {failed[0]}")
    published = [r for r in results if isinstance(r, Published)]
    ids_by_topic: dict[str, set[str]] = defaultdict(set)
    for result in published:
        ids_by_topic[result.topic].add(result.event_id)

    table = Table("topic", "events landed", "event types", title="What landed on each topic (read back from Kafka)")
    async with topic_reader(config, endpoints.kafka_bootstrap) as (admin, consumer):
        for topic, ids in sorted(ids_by_topic.items()):
            types: Counter[str] = Counter()
            async for event in read_topic(consumer, await topic_partitions(admin, topic), last=None):
                if event.envelope is not None and event.envelope.id in ids:
                    types[event.envelope.type] += 1
            if sum(types.values()) != len(ids):
                raise XbusError(f"{topic}: published {len(ids)} events but read back {sum(types.values())}")
            table.add_row(topic, str(sum(types.values())), "\n".join(f"{t} x{n}" for t, n in sorted(types.items())))
    out.print(table)
    out.print(f"{len(published)} events published and read back. Try: xbus tail xosp.users --from-beginning")
