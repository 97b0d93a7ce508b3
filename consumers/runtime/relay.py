"""The outbox relay: publishes a service's outbox rows to Kafka after their transaction commits.

Rows go out in id order and are marked sent only after the broker acknowledged them (acks=all,
idempotent where the broker supports it: :func:`infrastructure.kafka_clients.start_producer`), so a crash
re-publishes at most the last batch; downstream inboxes make that exactly-once in effect. Only
one relay per service publishes at a time (a PostgreSQL advisory lock): two relays taking turns
could reorder a key's events. The others stand by and take over when the holder dies. It wakes
on NOTIFY from the committing transaction, and polls as a fallback.

Each round is one round trip to PostgreSQL: the statement that marks the last batch sent also
reads the next one. A relay that dies between the acknowledgement and that statement publishes
the batch again when it starts, as it would have if it had died a moment earlier.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zlib

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from consumers.runtime import metrics
from consumers.runtime.inbox_outbox import outbox_channel
from consumers.runtime.records import headers_from_json
from consumers.runtime.tasks import sleep_unless, wait_any
from consumers.runtime.transient import TRANSIENT_ERRORS
from infrastructure.errors import BrokerUnavailable
from infrastructure.kafka_clients import acks_all_producer
from infrastructure.settings import Settings

log = structlog.get_logger("xbus.relay")


class OutboxRelay:
    def __init__(
        self,
        service: str,
        settings: Settings,
        bootstrap: str,
        database_url: str,
        *,
        batch_size: int = 1_000,
        poll_interval: float = 1.0,
    ) -> None:
        self.service = service
        self.schema = settings.db_schema(service)
        self._settings = settings
        self._bootstrap = bootstrap
        self._database_url = database_url
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; reconnects to PostgreSQL and Kafka as often as it must,
        starting its producer included (a broker restarting while the service starts)."""
        while not stop.is_set():
            try:
                async with acks_all_producer(self._settings, self._bootstrap, linger_ms=0) as producer:
                    while not stop.is_set():
                        try:
                            await self._serve(producer, stop)
                        except (*TRANSIENT_ERRORS, KafkaError) as error:
                            log.warning("outbox relay interrupted; retrying", service=self.service, error=repr(error))
                            await sleep_unless(stop, self._poll_interval)
            except BrokerUnavailable as error:
                log.warning("outbox relay cannot reach Kafka; retrying", service=self.service, error=repr(error))
                await sleep_unless(stop, self._poll_interval)

    async def _serve(self, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        connection = await asyncpg.connect(self._database_url, server_settings={"search_path": self.schema})
        try:
            await connection.add_listener(outbox_channel(self.service), lambda *_: self._wake.set())
            lock = zlib.crc32(f"xbus-relay:{self.schema}".encode())
            while not await connection.fetchval("select pg_try_advisory_lock($1)", lock):
                if await sleep_unless(stop, self._poll_interval):  # another instance's relay publishes
                    return
            acknowledged: list[int] = []
            while not stop.is_set():
                self._wake.clear()  # before reading: a NOTIFY during the read must wake the next wait
                rows = await connection.fetch(_MARK_SENT_AND_READ_NEXT, acknowledged, self._batch_size)
                if rows:
                    acknowledged = await self._publish(producer, rows)
                else:
                    acknowledged = []
                    await wait_any(stop, self._wake, self._poll_interval)
            # Stopping: what the last batches recorded goes out too, and everything sent is marked.
            rows = await connection.fetch(_MARK_SENT_AND_READ_NEXT, acknowledged, self._batch_size)
            if rows:
                await connection.execute(_MARK_SENT, await self._publish(producer, rows))
        finally:
            await connection.close()

    async def _publish(self, producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> list[int]:
        """Send ``rows`` in order and wait for every acknowledgement; the ids sent."""
        futures = [
            await producer.send(row["topic"], row["value"], key=row["key"], headers=headers_from_json(row["headers"]))
            for row in rows
        ]
        await asyncio.gather(*futures)
        acknowledged = dt.datetime.now(dt.UTC)
        latency = metrics.OUTBOX_LATENCY.labels(self.service)
        for row in rows:
            latency.observe((acknowledged - row["created_at"]).total_seconds())
        metrics.OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return [row["id"] for row in rows]


_MARK_SENT = "update xbus_outbox set sent_at = now() where id = any($1::bigint[])"

#: Mark the acknowledged rows ($1) sent and read the next batch: the read sees the table as the
#: statement found it, so the rows it marks are left out by id.
_MARK_SENT_AND_READ_NEXT = f"""
with marked as ({_MARK_SENT})
select id, topic, key, value, headers::text as headers, created_at from xbus_outbox
where sent_at is null and id <> all($1::bigint[])
order by id limit $2
"""
