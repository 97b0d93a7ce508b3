"""What a lag sample and a lag report are: shared by `xbus lag`, `xbus monitor` and the HTTP API.

A *sample* is what the brokers say at one moment, per group and partition: committed offset,
log start and end, lag in messages and in seconds (the age of the first record not yet
consumed, read from the record itself). A *report* adds what only a window of samples can tell:
a status per partition and per group (the rules are in judge.py and the README), the time left
before retention deletes records not yet consumed, and the business lag of the provisioning
tracker (the oldest flow not yet complete, per kind).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from infrastructure.groups import GroupMember


class Status(IntEnum):
    """Worse is higher: a group's status is the highest of its partitions'. The value is what the
    ``xbus_consumer_status`` gauge exports."""

    OK = 0
    WARN = 1
    REWIND = 2
    STALL = 3
    STOP = 4


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    #: The next offset the group will read; None when it never committed on this partition.
    committed: int | None
    log_start: int
    #: The high watermark (not what the embedded broker's ListOffsets says, see infrastructure/offsets.py).
    log_end: int
    #: Records not yet consumed: from ``committed`` (or ``log_start`` when None) to ``log_end``.
    lag: int
    #: Now minus the timestamp of the first record not yet consumed; 0 when caught up.
    lag_seconds: float
    #: The member that owns the partition, where the broker reports assignments (Kafka does).
    owner: str | None
    #: The topic's retention.ms; None when unlimited or unknown.
    retention_ms: int | None


@dataclass(frozen=True)
class GroupLag:
    group: str
    #: The broker's state of the group (Stable, Empty, PreparingRebalance...).
    state: str
    members: tuple[GroupMember, ...]
    partitions: tuple[PartitionLag, ...]


@dataclass(frozen=True)
class LagSample:
    #: Unix time the sample was taken.
    taken_at: float
    groups: tuple[GroupLag, ...]


@dataclass(frozen=True)
class PartitionReport:
    lag: PartitionLag
    status: Status
    #: One line saying why the status is what it is.
    reason: str
    #: Seconds until the oldest unconsumed record is deleted by retention at the current rates;
    #: None when nothing is at risk (caught up, catching up, or no retention).
    time_to_loss_seconds: float | None
    #: ``time_to_loss_seconds`` is under the configured margin.
    retention_at_risk: bool

    def to_json(self) -> dict[str, Any]:
        lag = self.lag
        return {
            "topic": lag.topic,
            "partition": lag.partition,
            "committed": lag.committed,
            "log_start": lag.log_start,
            "log_end": lag.log_end,
            "lag": lag.lag,
            "lag_seconds": round(lag.lag_seconds, 3),
            "owner": lag.owner,
            "status": self.status.name,
            "reason": self.reason,
            "time_to_loss_seconds": None if self.time_to_loss_seconds is None else round(self.time_to_loss_seconds, 1),
            "retention_at_risk": self.retention_at_risk,
        }


@dataclass(frozen=True)
class GroupReport:
    group: str
    state: str
    members: tuple[GroupMember, ...]
    status: Status
    partitions: tuple[PartitionReport, ...]

    @property
    def lag(self) -> int:
        return sum(p.lag.lag for p in self.partitions)

    @property
    def lag_seconds(self) -> float:
        return max((p.lag.lag_seconds for p in self.partitions), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "status": self.status.name,
            "lag": self.lag,
            "lag_seconds": round(self.lag_seconds, 3),
            "members": [
                {
                    "member_id": m.member_id,
                    "client_id": m.client_id,
                    "host": m.host,
                    "assignment": [f"{tp.topic}[{tp.partition}]" for tp in m.assignment],
                }
                for m in self.members
            ],
            "partitions": [p.to_json() for p in self.partitions],
        }


@dataclass(frozen=True)
class LagReport:
    taken_at: float
    groups: tuple[GroupReport, ...]
    #: Age in seconds of the oldest provisioning flow not yet complete, per kind (user, operator,
    #: account, exchange); None for a kind with no open flow. Empty when no tracker schema exists.
    business: dict[str, float | None]
    #: False on the embedded broker, which stores retention.ms but never deletes anything: the
    #: time-to-loss figures are then what Apache Kafka would do, not what will happen here.
    retention_enforced: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "taken_at": dt.datetime.fromtimestamp(self.taken_at, dt.UTC).isoformat().replace("+00:00", "Z"),
            "retention_enforced": self.retention_enforced,
            "business": {kind: None if age is None else round(age, 3) for kind, age in self.business.items()},
            "groups": [g.to_json() for g in self.groups],
        }
