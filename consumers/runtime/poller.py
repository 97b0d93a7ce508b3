"""Polling: records polled and not yet applied, per partition, and which worker holds which one.

The consumer keeps fetching while batches are applied: polled records join their partition's
queue. The partitions with records and no worker are started together, as one group, in one
worker (one transaction per poll, not one per partition: runner.py says why); a partition whose
group made no progress goes *solo*: a worker of its own until its queue is empty, so a stuck event
holds back its own partition only. A partition is never in two workers at once, so its events
stay in order. A partition is paused when its queue is full (``max_records``) and resumed when a
worker takes the queue: pausing earlier would drop what the consumer had prefetched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from consumers.runtime.tasks import Supervisor, unless_stopped

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class Poller:
    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        #: Records polled and not yet taken by their partition's worker, in offset order.
        self._queued: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        #: The worker applying each partition's records, while it has any.
        self._workers: dict[TopicPartition, asyncio.Task[None]] = {}
        #: Partitions of a group that made no progress: each gets a worker of its own until its
        #: queue is empty.
        self._solo: set[TopicPartition] = set()
        #: Set whenever a worker gives partitions up: what a rebalance waits for.
        self._released = asyncio.Event()

    async def run(
        self,
        consumer: AIOKafkaConsumer,
        stop: asyncio.Event,
        drain: Callable[[set[TopicPartition]], Coroutine[Any, Any, None]],
        first_offsets: dict[TopicPartition, int],
        supervisor: Supervisor,
    ) -> None:
        """Poll until ``stop`` is set (or a supervised task failed: its error is raised): queue what
        is polled for the partitions still assigned, noting the first offset read of each (where
        the group's offset put us), and start ``drain(group)`` for each group waiting, as a worker
        the supervisor watches."""
        while (
            batches := await unless_stopped(stop, consumer.getmany(timeout_ms=200, max_records=self.max_records))
        ) is not None:
            if supervisor.failure is not None:
                raise supervisor.failure
            assigned = consumer.assignment()
            for tp, records in batches.items():
                if records and tp in assigned:
                    first_offsets.setdefault(tp, records[0].offset)
                    if self.add(tp, records):
                        consumer.pause(tp)  # until a worker takes the queue
            for group in self.waiting():
                worker = asyncio.create_task(drain(group))
                self.hold(group, worker)
                supervisor.watch(worker)

    def add(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        """Queue ``records`` of ``tp``; True when its queue is now full (pause the partition)."""
        queue = self._queued.setdefault(tp, [])
        queue += records
        return len(queue) >= self.max_records

    def waiting(self) -> list[set[TopicPartition]]:
        """The groups to start a worker for: each solo partition with records and no worker on its
        own, and all the others with records and no worker together."""
        waiting = {tp for tp, queue in self._queued.items() if queue and tp not in self._workers}
        return [group for group in [{tp} for tp in waiting & self._solo] + [waiting - self._solo] if group]

    def hold(self, partitions: set[TopicPartition], worker: asyncio.Task[None]) -> None:
        for tp in partitions:
            self._workers[tp] = worker

    def take(self, consumer: AIOKafkaConsumer, owned: set[TopicPartition]) -> Batch:
        """The next batch of ``owned``: up to ``max_records`` of each queue; a partition paused for
        a full queue fetches again. Partitions with nothing queued (or no queue: given up in a
        rebalance) are released at once, not after an await: records the poll loop queues for
        them from here on must find no worker registered, or they would wait for the
        partition's next records to start one."""
        batch: Batch = {}
        for tp in owned:
            if queue := self._queued.get(tp):
                batch[tp], self._queued[tp] = queue[: self.max_records], queue[self.max_records :]
                if tp in consumer.paused():  # paused() lists partitions of the current assignment only
                    consumer.resume(tp)
        self.release(owned, owned - batch.keys())
        return batch

    def put_back(self, batch: Batch) -> None:
        """Queue a rolled-back batch again, ahead of what was polled since."""
        for tp, taken in batch.items():
            if tp in self._queued:  # not given up in a rebalance meanwhile
                self._queued[tp] = taken + self._queued[tp]

    def release(self, owned: set[TopicPartition], partitions: set[TopicPartition]) -> None:
        """The current worker gives ``partitions`` up (they leave ``owned``, and solo runs end)."""
        for tp in partitions:
            owned.discard(tp)
            if self._workers.get(tp) is asyncio.current_task():
                del self._workers[tp]
        self._solo -= partitions
        if partitions:
            self._released.set()

    def go_solo(self, partitions: Iterable[TopicPartition]) -> None:
        self._solo |= set(partitions)

    async def give_up(self, partitions: set[TopicPartition]) -> None:
        """Drop what is queued for ``partitions`` and wait for their workers to finish."""
        for tp in partitions:
            self._queued.pop(tp, None)
        self._solo -= partitions
        while any(tp in self._workers for tp in partitions):
            self._released.clear()
            await self._released.wait()

    def workers(self) -> set[asyncio.Task[None]]:
        return set(self._workers.values())
