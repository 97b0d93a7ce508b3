"""The provisioning tracker run alone, in-process, on the real stack: fed by publishing the upstream
events and the services' follow-up events directly, read through its query API and its topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from consumers.provisioning.queries import FlowView, flows_of
from consumers.provisioning.service import SERVICE
from consumers.runtime import Service
from consumers.runtime.runner import ServiceRunner
from infrastructure.endpoints import load_catalogue
from infrastructure.kafka_clients import client_options
from infrastructure.reader import ReadEvent
from infrastructure.settings import Settings
from producers import Outgoing, open_publisher
from schemas import Envelope, Event
from tests.integration.test_publisher import read_all
from tests.integration.test_runtime import eventually


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Tracker:
    settings: Settings
    runner: ServiceRunner
    connection: asyncpg.Connection

    @property
    def schema(self) -> str:
        return self.settings.db_schema(SERVICE.name)

    async def publish(self, *items: Event | Outgoing) -> None:
        """Events whose type one topic carries, routed by the catalogue."""
        async with open_publisher(self.settings) as p:
            results = await p.publish_many(items)
        assert all(hasattr(result, "offset") for result in results), results

    async def report(self, topic: str, event: Event) -> None:
        """A step report (StepWaiting, StepFailed) as one service publishes it on its follow-up topic."""
        envelope = Envelope.new(type=event.event_type, subject=event.aggregate_id, source=f"xbus/{topic}")
        producer = AIOKafkaProducer(**client_options(self.settings, self.settings.kafka_bootstrap or ""), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                self.settings.topic(topic),
                event.model_dump_json().encode(),
                key=event.aggregate_id.encode(),
                headers=envelope.to_headers(),
            )
        finally:
            await producer.stop()

    async def flows(self, kind: str, entity_id: str) -> list[FlowView]:
        return await flows_of(self.connection, kind, entity_id, schema=self.schema)

    async def flow_when(self, kind: str, entity_id: str, check: Callable[[FlowView], bool]) -> FlowView:
        """The entity's only flow, once ``check`` holds for it."""
        found: list[FlowView] = []

        async def ready() -> bool:
            flows = await self.flows(kind, entity_id)
            assert len(flows) <= 1, flows
            found[:] = flows
            return bool(flows) and check(flows[0])

        await eventually(ready, timeout=30)
        return found[0]

    async def scalar(self, query: str) -> int:
        return int(await self.connection.fetchval(query.replace("{schema}", f'"{self.schema}"')))

    async def published(self, *types: type[Event]) -> list[ReadEvent]:
        """The tracker's own events (of ``types``), once everything it recorded is on its topic."""
        await eventually(lambda: self._all_sent(), timeout=30)
        events = await read_all(self.settings, "xosp.provisioning.events")
        names = {t.event_type for t in types}
        return [e for e in events if e.envelope is not None and (not names or e.envelope.type in names)]

    async def _all_sent(self) -> bool:
        return await self.scalar("select count(*) from {schema}.xbus_outbox where sent_at is null") == 0


def state(value: str) -> Callable[[FlowView], bool]:
    return lambda flow: flow.state == value


def steps(flow: FlowView) -> dict[str, str]:
    """Step name → state."""
    return {step.step: step.state.value for step in flow.steps}


@asynccontextmanager
async def running_tracker(settings: Settings, service: Service = SERVICE) -> AsyncIterator[Tracker]:
    runner = ServiceRunner(
        service, settings, load_catalogue(settings), settings.kafka_bootstrap or "", settings.database_url or ""
    )
    await runner.migrate()
    connection = await asyncpg.connect(settings.database_url or "")
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield Tracker(settings, runner, connection)
    finally:
        stop.set()
        await task
        await connection.close()
