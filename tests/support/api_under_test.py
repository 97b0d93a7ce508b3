"""The HTTP API served by uvicorn in-process on a free port, over a module's settings, with an httpx client.

Starting it costs the publisher's connection, the lag watcher's clients and a pool; a module
serves it once and each test makes the tokens and entities it needs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import TopicPartition

from infrastructure.brokers import broker_traits
from infrastructure.endpoints import Endpoints
from infrastructure.kafka_clients import admin_client, plain_consumer
from infrastructure.offsets import log_end_offsets
from infrastructure.reader import ReadEvent, read_topic, topic_partitions
from infrastructure.settings import Settings
from xbus.api.app import create_app
from xbus.api.resources import ApiResources
from xbus.api.server import ApiServer, bind


@dataclass(frozen=True)
class ApiUnderTest:
    url: str
    settings: Settings
    resources: ApiResources
    client: httpx.AsyncClient

    async def token(self, *scopes: str) -> dict[str, str]:
        """Headers carrying a new token with ``scopes``."""
        _, text = await self.resources.tokens.create(f"test-{uuid.uuid4().hex[:6]}", scopes, None)
        return {"Authorization": f"Bearer {text}"}

    async def records(self, topic: str, partition: int) -> list[ReadEvent]:
        """Every record of the partition as it is now, read back from the broker."""
        tp = TopicPartition(topic, partition)
        async with plain_consumer(self.settings, self.settings.kafka_bootstrap or "") as consumer:
            consumer.assign([tp])
            return [read async for read in read_topic(consumer, [tp], idle_ms=50)]

    async def record_count(self, topic: str) -> int:
        """How many records ``topic`` (a catalogue name) holds now: the sum of its partitions' ends."""
        bootstrap, name = self.settings.kafka_bootstrap or "", self.settings.topic(topic)
        async with admin_client(self.settings, bootstrap) as admin, plain_consumer(self.settings, bootstrap) as reader:
            partitions = await topic_partitions(admin, name)
            return sum((await log_end_offsets(reader, partitions)).values())

    async def record(self, where: dict[str, Any]) -> ReadEvent:
        """The record an API result (topic, partition, offset) points to."""
        records = await self.records(where["topic"], where["partition"])
        [record] = [record for record in records if record.offset == where["offset"]]
        return record


@asynccontextmanager
async def api_under_test(settings: Settings) -> AsyncIterator[ApiUnderTest]:
    bootstrap = settings.kafka_bootstrap or ""
    endpoints = Endpoints(bootstrap, settings.database_url or "", (await broker_traits(settings, bootstrap)).kind)
    app = create_app(settings, endpoints)
    server = ApiServer(app, bind("127.0.0.1", 0))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            yield ApiUnderTest(server.url, settings, app.state.resources, client)
    finally:
        await server.stop()
