"""A domain service running in-process on the session's embedded stack, shared by a test module.

Starting a runner (migrations, joining the consumer group) costs seconds; sending an event and
reading what it caused costs a fraction of one. So a module starts its service once, on topics
and a schema of its own, and each test works on entities (logins, accounts) of its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import asyncpg

from consumers.runtime import Service
from consumers.runtime.runner import ServiceRunner
from infrastructure.endpoints import apply_catalogue, load_catalogue
from infrastructure.kafka_clients import topic_reader
from infrastructure.reader import ReadEvent, read_topic, topic_partitions
from infrastructure.settings import Settings, load_settings
from producers import Outgoing, Published, Publisher
from schemas import Event, event_types
from tests.conftest import Stack


async def module_settings(stack: Stack) -> Settings:
    """Topics (created now) and service schemas of a module's own on the session's stack."""
    settings = load_settings(
        data_dir=stack.data_dir,
        kafka_bootstrap=stack.endpoints.kafka_bootstrap,
        database_url=stack.endpoints.database_url,
        topic_prefix=f"m{uuid.uuid4().hex[:10]}.",
        db_schema_prefix=f"m{uuid.uuid4().hex[:8]}_",
        source="tests",
    )
    await apply_catalogue(settings, settings.kafka_bootstrap or "")
    return settings


@dataclass(frozen=True)
class Handled:
    """The events a test sent, by id, and the follow-up events they caused."""

    event_ids: list[str]
    follow_ups: list[Event]

    @property
    def flow_id(self) -> str:
        """The flow the one event sent started: its id."""
        [event_id] = self.event_ids
        return event_id


class ServiceUnderTest:
    """``async with ServiceUnderTest(SERVICE, settings) as service``: its runner runs until exit."""

    def __init__(self, service: Service, settings: Settings, timeout: float = 20.0) -> None:
        self.service = service
        self.settings = settings
        self.timeout = timeout
        catalogue = load_catalogue(settings)
        self.follow_up_topic = service.follow_up_topic(catalogue)
        self.runner = ServiceRunner(
            service, settings, catalogue, settings.kafka_bootstrap or "", settings.database_url or ""
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._db: asyncpg.Connection | None = None
        self._publisher = Publisher(settings, settings.kafka_bootstrap or "", catalogue)

    async def __aenter__(self) -> Self:
        await self.runner.migrate()
        await self._publisher.start()
        self._task = asyncio.create_task(self.runner.run(self._stop))
        self._db = await asyncpg.connect(self.settings.database_url or "")
        await self._db.execute(f'set search_path to "{self.settings.db_schema(self.service.name)}"')
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._db is not None:
            await self._db.close()
        await self._publisher.stop()

    @property
    def db(self) -> asyncpg.Connection:
        """A connection whose search_path is the service's schema: what its queries.py takes."""
        assert self._db is not None, "use the service inside `async with`"
        return self._db

    async def handle(self, *events: Event | Outgoing) -> Handled:
        """Publish ``events``, wait until the service has read each (applied, dead-lettered, held
        waiting for a prerequisite or parked behind a dead letter) and published what they caused,
        and return those follow-up events, parsed.

        An event the service does not handle leaves no trace to wait on: send a handled event of
        the same key after it, which the service reads after it (same partition).
        """
        results = await self._publisher.publish_many(events)
        published = [result for result in results if isinstance(result, Published)]
        assert len(published) == len(events), results
        ids = [result.event_id for result in published]
        handled = [result.event_id for result in published if result.event_type in self.service.by_type]
        assert handled, "send at least one event the service handles, to know when it has read them"
        await self._settled(handled)
        follow_ups = [
            event_types.parse(read.envelope.type, read.data)
            for read in await self._follow_up_records()
            if read.envelope is not None and read.envelope.causation_id in ids
        ]
        return Handled(ids, follow_ups)

    async def dead_lettered(self, event_id: str) -> bool:
        return bool(await self.db.fetchval("select 1 from xbus_dead_letters where event_id = $1", event_id))

    async def _follow_up_records(self) -> list[ReadEvent]:
        """The follow-up topic as it is now (short polls: the relay has published it all)."""
        async with topic_reader(self.settings, self.settings.kafka_bootstrap or "") as (admin, consumer):
            partitions = await topic_partitions(admin, self.settings.topic(self.follow_up_topic))
            return [read async for read in read_topic(consumer, partitions, idle_ms=50)]

    async def _settled(self, ids: list[str]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            done = await self.db.fetchval(
                "select (select count(*) from xbus_inbox where event_id = any($1::text[]))"
                " + (select count(*) from xbus_dead_letters where event_id = any($1::text[]))"
                " + (select count(*) from xbus_pending where event_id = any($1::text[]))"
                " + (select count(*) from xbus_parked where event_id = any($1::text[]))",
                ids,
            )
            unsent = await self.db.fetchval("select count(*) from xbus_outbox where sent_at is null")
            if done == len(ids) and unsent == 0:
                return
            assert time.monotonic() < deadline, f"{self.service.name} did not apply {ids} in {self.timeout} s"
            await asyncio.sleep(0.05)
