"""What a rebuild, a shadow rebuild and a swap report: printed by the CLI, or as JSON."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition

from xbus.rebuild.diff import TableDiff
from xbus.rebuild.state import TableState


@dataclass(frozen=True)
class RebuildReport:
    service: str
    schema: str
    group: str
    #: The log-end offsets read up to (the topics' ends when the rebuild began).
    target: dict[TopicPartition, int]
    #: Records between the log start and the target: what the rebuild read.
    events: int
    applied: int
    duplicates: int
    dead_lettered: int
    parked: int
    seconds: float
    checksum: str
    tables: list[TableState]
    #: Rebuilt follow-ups already published before the rebuild, marked sent.
    marked_sent: int
    #: Rebuilt follow-ups never published before, left for the relay of the service's next run.
    to_publish: int

    def to_json(self) -> dict[str, object]:
        return {
            "service": self.service,
            "schema": self.schema,
            "group": self.group,
            "target": offsets_json(self.target),
            "events": self.events,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "parked": self.parked,
            "seconds": round(self.seconds, 3),
            "checksum": self.checksum,
            "tables": [table.to_json() for table in self.tables],
            "marked_sent": self.marked_sent,
            "to_publish": self.to_publish,
        }


@dataclass(frozen=True)
class ShadowReport:
    shadow: RebuildReport
    live_schema: str
    live_checksum: str
    diff: list[TableDiff]

    @property
    def identical(self) -> bool:
        return self.live_checksum == self.shadow.checksum

    def to_json(self) -> dict[str, object]:
        return {
            "shadow": self.shadow.to_json(),
            "live_schema": self.live_schema,
            "live_checksum": self.live_checksum,
            "identical": self.identical,
            "compared": "the shadow as of its target offsets with the live state at the moment of comparison",
            "diff": [table.to_json() for table in self.diff],
        }


@dataclass(frozen=True)
class SwapReport:
    service: str
    schema: str
    backup_schema: str
    shadow_schema: str
    group: str
    #: The shadow's group, deleted after the swap.
    shadow_group: str
    #: Events the shadow read to catch up to the log end before the swap.
    caught_up: int
    #: The live group's committed offsets before the swap, and after (the shadow's).
    offsets_before: dict[TopicPartition, int | None]
    offsets_after: dict[TopicPartition, int]
    marked_sent: int
    to_publish: int
    checksum: str
    #: The deployment's topic prefix: `xbus replay --topic` takes topics.yaml names.
    topic_prefix: str = ""

    def undo(self) -> list[str]:
        """What puts the previous state back (the service stopped first)."""
        steps = [
            f'alter schema "{self.schema}" rename to "{self.shadow_schema}"; '
            f'alter schema "{self.backup_schema}" rename to "{self.schema}";'
        ]
        for tp, offset in sorted(self.offsets_before.items()):
            if offset is not None and offset != self.offsets_after.get(tp):
                steps.append(
                    f"xbus replay {self.group} --to-offset {offset} "
                    f"--topic {tp.topic.removeprefix(self.topic_prefix)}:{tp.partition} --execute"
                )
        return steps

    def to_json(self) -> dict[str, object]:
        return {
            "service": self.service,
            "schema": self.schema,
            "backup_schema": self.backup_schema,
            "group": self.group,
            "shadow_group": self.shadow_group,
            "caught_up": self.caught_up,
            "offsets_before": offsets_json(self.offsets_before),
            "offsets_after": offsets_json(self.offsets_after),
            "marked_sent": self.marked_sent,
            "to_publish": self.to_publish,
            "checksum": self.checksum,
            "undo": self.undo(),
        }


def offsets_json(offsets: dict[TopicPartition, int] | dict[TopicPartition, int | None]) -> list[dict[str, object]]:
    return [{"topic": tp.topic, "partition": tp.partition, "offset": offset} for tp, offset in sorted(offsets.items())]
