"""Publisher.publish_many against a raw aiokafka producer, same broker, same payloads, same run.

Prints events/s of each and their ratio (target >= 0.9). Both sides use acks=all, linger 5 ms,
the same topic, keys, JSON payloads and CloudEvents headers; the raw side gets them
pre-serialised, so the ratio is the whole cost of our envelope, validation-free serialisation
and routing. Rounds alternate between the two so that machine noise hits both alike; the
median of the rounds is reported.

Usage: python bench/publish.py [--events N] [--rounds R]   (runs on the embedded stack by default)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

from aiokafka import AIOKafkaProducer
from broker_option import add_broker_option, broker_name, choose_broker

from infrastructure.endpoints import apply_catalogue, connect, load_catalogue
from infrastructure.kafka_clients import client_options
from infrastructure.logs import configure_logging
from infrastructure.settings import Settings, load_settings
from producers import Publisher
from schemas import Envelope
from schemas.types import Role
from schemas.users import UserCreated


def sample_events(count: int) -> list[UserCreated]:
    return [
        UserCreated(
            login_id=str(uuid.UUID(int=i)),
            username=f"user{i:06d}",
            email=f"user{i:06d}@example.com",
            display_name=f"User {i:06d}",
            roles=(Role.MOTIF_USER,),
            markets=("XSX",),
        )
        for i in range(count)
    ]


async def raw_round(
    settings: Settings,
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]],
    idempotent: bool,
) -> float:
    """The same records from a bare producer with the publisher's guarantees (idempotent where it is)."""
    producer = AIOKafkaProducer(
        **client_options(settings, bootstrap), acks="all", linger_ms=5, enable_idempotence=idempotent
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in records]
        await asyncio.gather(*futures)
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def publisher_round(publisher: Publisher, events: list[UserCreated]) -> float:
    started = time.perf_counter()
    results = await publisher.publish_many(events)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if not hasattr(r, "offset")]
    if failed:
        raise SystemExit(f"{len(failed)} events failed to publish: {failed[0]}")
    return len(events) / elapsed


async def main(count: int, rounds: int) -> None:
    settings = load_settings(topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    configure_logging(settings.log_format, settings.log_level)
    endpoints = await connect(settings)
    await apply_catalogue(settings, endpoints.kafka_bootstrap)
    catalogue = load_catalogue(settings)
    topic = settings.topic("xosp.users")
    events = sample_events(count)
    records = []
    for event in events:
        envelope = Envelope.new(type=event.event_type, subject=event.login_id, source=settings.source)
        records.append((event.login_id.encode(), event.model_dump_json().encode(), envelope.to_headers()))

    raw_rates: list[float] = []
    ours: list[float] = []
    async with Publisher(settings, endpoints.kafka_bootstrap, catalogue) as publisher:
        await publisher_round(publisher, events[:1000])  # warm-up: connections, metadata
        idempotent = publisher.idempotent
        await raw_round(settings, endpoints.kafka_bootstrap, topic, records[:1000], idempotent)
        for index in range(rounds):
            raw_rates.append(await raw_round(settings, endpoints.kafka_bootstrap, topic, records, idempotent))
            ours.append(await publisher_round(publisher, events))
            print(f"round {index + 1}/{rounds}: raw {raw_rates[-1]:,.0f}/s  publisher {ours[-1]:,.0f}/s", flush=True)
    raw, mine = statistics.median(raw_rates), statistics.median(ours)
    print(
        json.dumps(
            {
                "broker": broker_name(endpoints),
                "events": count,
                "rounds": rounds,
                "raw_aiokafka_per_s": round(raw),
                "publisher_per_s": round(mine),
                "ratio": round(mine / raw, 3),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    add_broker_option(parser)
    args = parser.parse_args()
    choose_broker(args)
    asyncio.run(main(args.events, args.rounds))
