"""Group commit of consumer offsets: batches that finish together share one OffsetCommit.

Each batch commits its partitions' offsets as soon as its transaction has committed, so that a
slow batch never holds back the others' progress. aiokafka serialises commits behind a lock, one
round trip each; here, whoever holds the lock commits every offset that arrived meanwhile, so a
burst of batches costs one or two round trips, not one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition


class GroupCommitter:
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._pending: dict[TopicPartition, int] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._lock = asyncio.Lock()

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Return once ``offsets`` (the next offset to read, by partition) are committed; raise if
        that failed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.update(offsets)
        self._waiters.append(done)
        async with self._lock:
            if not done.done():
                offsets, waiters = self._pending, self._waiters
                self._pending, self._waiters = {}, []
                try:
                    await self._consumer.commit(offsets)
                except Exception as error:
                    for waiter in waiters:
                        waiter.set_exception(error)
                else:
                    for waiter in waiters:
                        waiter.set_result(None)
        await done
