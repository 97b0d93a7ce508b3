"""A replay plan: where each partition of a group goes, as pure arithmetic on offsets.

Current committed offset, log start, log end and a mode give the new offset, so a plan can be
printed, tested and read before anything changes (execute.py carries it out).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiokafka import TopicPartition

from infrastructure.durations import parse_duration_ms
from infrastructure.errors import XbusError
from infrastructure.groups import GroupDescription


class BadReplayRequest(XbusError):
    """The command line asks for something that cannot be planned (no mode, two modes, a bad time)."""

    exit_code = 2


class ModeKind(StrEnum):
    TO_EARLIEST = "to-earliest"
    TO_LATEST = "to-latest"
    TO_DATETIME = "to-datetime"
    BY_DURATION = "by-duration"
    TO_OFFSET = "to-offset"
    SHIFT_BY = "shift-by"


@dataclass(frozen=True)
class Mode:
    kind: ModeKind
    #: to-datetime: the time in ms since the epoch; by-duration: the duration in ms; to-offset: the
    #: offset; shift-by: the shift (negative re-reads); unused otherwise.
    amount: int = 0

    @property
    def by_time(self) -> bool:
        return self.kind in (ModeKind.TO_DATETIME, ModeKind.BY_DURATION)

    def at_ms(self, now_ms: int) -> int:
        """The point in time a time mode goes back to."""
        if self.kind == ModeKind.TO_DATETIME:
            return self.amount
        if self.kind == ModeKind.BY_DURATION:
            return now_ms - self.amount
        raise ValueError(f"{self.kind} is not a mode of time")


def parse_mode(
    *,
    to_earliest: bool = False,
    to_latest: bool = False,
    to_datetime: str | None = None,
    by_duration: str | None = None,
    to_offset: int | None = None,
    shift_by: int | None = None,
) -> Mode:
    """The one mode the command line gave, or :class:`BadReplayRequest`."""
    given = [
        name
        for name, value in (
            ("--to-earliest", to_earliest),
            ("--to-latest", to_latest),
            ("--to-datetime", to_datetime is not None),
            ("--by-duration", by_duration is not None),
            ("--to-offset", to_offset is not None),
            ("--shift-by", shift_by is not None),
        )
        if value
    ]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise BadReplayRequest(
            "give exactly one of --to-earliest, --to-latest, --to-datetime T, --by-duration D, --to-offset N, "
            f"--shift-by N (got {what})"
        )
    if to_earliest:
        return Mode(ModeKind.TO_EARLIEST)
    if to_latest:
        return Mode(ModeKind.TO_LATEST)
    if to_datetime is not None:
        return Mode(ModeKind.TO_DATETIME, parse_datetime_ms(to_datetime))
    if by_duration is not None:
        return Mode(ModeKind.BY_DURATION, _duration_ms(by_duration))
    if to_offset is not None:
        return Mode(ModeKind.TO_OFFSET, to_offset)
    assert shift_by is not None
    return Mode(ModeKind.SHIFT_BY, shift_by)


def parse_datetime_ms(text: str) -> int:
    """ISO 8601 (``2025-03-01``, ``2025-03-01T09:30``, ``...+02:00``, ``...Z``); without an offset it is UTC."""
    try:
        at = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadReplayRequest(
            f"--to-datetime {text!r} is not an ISO 8601 time such as 2025-03-01T09:30:00Z (without an offset it is UTC)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return int(at.timestamp() * 1000)


def _duration_ms(text: str) -> int:
    try:
        duration = parse_duration_ms(text)
    except ValueError as error:
        raise BadReplayRequest(f"--by-duration: {error}") from None
    if duration < 0:
        raise BadReplayRequest(
            "--by-duration needs a finite duration such as 30m, 12h or 7d (to start over: --to-earliest)"
        )
    return duration


@dataclass(frozen=True)
class TopicSelection:
    """``--topic T[:P,...]``: a catalogue topic, and some of its partitions (None: all of them)."""

    topic: str
    partitions: frozenset[int] | None = None


def parse_selection(text: str) -> TopicSelection:
    topic, colon, numbers = text.strip().partition(":")
    if not topic:
        raise BadReplayRequest(f"--topic {text!r}: name a topic, as in xosp.users or xosp.users:0,3")
    if not colon:
        return TopicSelection(topic)
    try:
        partitions = frozenset(int(number) for number in numbers.split(","))
    except ValueError:
        raise BadReplayRequest(
            f"--topic {text!r}: partitions are a comma list of numbers after the colon, as in {topic}:0,3"
        ) from None
    if any(p < 0 for p in partitions):
        raise BadReplayRequest(f"--topic {text!r}: partition numbers start at 0")
    return TopicSelection(topic, partitions)


def merge_selections(selections: Iterable[TopicSelection]) -> dict[str, frozenset[int] | None]:
    """Per topic, the partitions selected (None: all); a topic named twice gets the union."""
    merged: dict[str, frozenset[int] | None] = {}
    for selection in selections:
        if selection.topic in merged:
            before = merged[selection.topic]
            merged[selection.topic] = (
                None if before is None or selection.partitions is None else before | selection.partitions
            )
        else:
            merged[selection.topic] = selection.partitions
    return merged


@dataclass(frozen=True)
class PartitionPlan:
    tp: TopicPartition
    #: The group's committed offset (the next it reads); None when it never committed here.
    current: int | None
    log_start: int
    log_end: int
    #: Where the offset goes; None when it stays (a shift of a partition never committed).
    new: int | None
    #: Where the mode pointed before the offset was kept within the log (``new`` unless clamped).
    requested: int | None = None

    @property
    def clamped(self) -> bool:
        """The mode pointed outside the log, and ``new`` is its nearest end (as Kafka's own tool does)."""
        return self.requested is not None and self.requested != self.new

    @property
    def clamp_note(self) -> str:
        """Kafka's own words for a clamped offset (kafka-consumer-groups --reset-offsets)."""
        where = f"{self.tp.topic}-{self.tp.partition}"
        if self.requested is not None and self.requested > self.log_end:
            return f"New offset ({self.requested}) is higher than latest offset for {where}: set to {self.new}"
        return f"New offset ({self.requested}) is lower than earliest offset for {where}: set to {self.new}"

    @property
    def never_committed(self) -> bool:
        return self.current is None

    @property
    def moves(self) -> bool:
        return self.new is not None and self.new != self.current

    @property
    def re_read(self) -> int:
        """Events the group reads again; 0 when it never committed (it read nothing here)."""
        if self.current is None or self.new is None:
            return 0
        return max(self.current - self.new, 0)

    @property
    def skipped(self) -> int:
        """Events the group will never read (the offset moves forward past them)."""
        if self.current is None or self.new is None:
            return 0
        return max(self.new - self.current, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.tp.topic,
            "partition": self.tp.partition,
            "current": self.current,
            "new": self.new,
            "log_start": self.log_start,
            "log_end": self.log_end,
            "re_read": self.re_read,
            "skipped": self.skipped,
            "never_committed": self.never_committed,
            "requested": self.requested,
            "clamped": self.clamped,
        }


def new_offset(mode: Mode, current: int | None, log_start: int, log_end: int, found: int | None = None) -> int | None:
    """Where ``mode`` moves one partition, clamped to the log; ``found`` is the time search's answer
    for a time mode. A shift of a partition that never committed has nothing to shift from: None."""
    target = requested_offset(mode, current, log_start, log_end, found)
    return None if target is None else min(max(target, log_start), log_end)


def requested_offset(
    mode: Mode, current: int | None, log_start: int, log_end: int, found: int | None = None
) -> int | None:
    """Where ``mode`` points for one partition, before it is kept within the log."""
    if mode.kind == ModeKind.TO_EARLIEST:
        target = log_start
    elif mode.kind == ModeKind.TO_LATEST:
        target = log_end
    elif mode.kind == ModeKind.TO_OFFSET:
        target = mode.amount
    elif mode.kind == ModeKind.SHIFT_BY:
        if current is None:
            return None
        target = current + mode.amount
    else:
        if found is None:
            raise ValueError(f"{mode.kind} needs the offset found for its time")
        target = found
    return target


@dataclass(frozen=True)
class ReplayPlan:
    group: str
    mode: Mode
    #: The mode's point in time (ms) for to-datetime and by-duration.
    at_ms: int | None
    #: The xbus service whose group this is; None for any other group (no replay marks then).
    service: str | None
    #: The service's PostgreSQL schema, where replay marks go.
    schema: str | None
    description: GroupDescription
    partitions: tuple[PartitionPlan, ...]

    @property
    def mode_text(self) -> str:
        if self.at_ms is not None:
            return f"{self.mode.kind} (first record at or after {_iso(self.at_ms)})"
        if self.mode.kind in (ModeKind.TO_OFFSET, ModeKind.SHIFT_BY):
            return f"{self.mode.kind} {self.mode.amount}"
        return str(self.mode.kind)

    @property
    def re_read(self) -> int:
        return sum(p.re_read for p in self.partitions)

    @property
    def skipped(self) -> int:
        return sum(p.skipped for p in self.partitions)

    @property
    def never_committed(self) -> int:
        return sum(1 for p in self.partitions if p.never_committed)

    @property
    def offsets(self) -> dict[TopicPartition, int]:
        """What to commit: the partitions whose offset moves."""
        return {p.tp: p.new for p in self.partitions if p.new is not None and p.moves}

    @property
    def marks(self) -> dict[TopicPartition, int]:
        """Per partition moved back, the offset reached before: records below it are replayed."""
        return {p.tp: p.current for p in self.partitions if p.current is not None and p.re_read}

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "mode": str(self.mode.kind),
            **({"amount": self.mode.amount} if self.mode.kind in (ModeKind.TO_OFFSET, ModeKind.SHIFT_BY) else {}),
            **({"at": _iso(self.at_ms)} if self.at_ms is not None else {}),
            "service": self.service,
            "members": [str(member) for member in self.description.members],
            "re_read": self.re_read,
            "skipped": self.skipped,
            "never_committed": self.never_committed,
            "partitions": [p.to_json() for p in self.partitions],
        }


def plan_partitions(
    mode: Mode,
    current: Mapping[TopicPartition, int | None],
    log_start: Mapping[TopicPartition, int],
    log_end: Mapping[TopicPartition, int],
    found: Mapping[TopicPartition, int] | None = None,
) -> tuple[PartitionPlan, ...]:
    """The plan of each partition of ``current``, in topic and partition order."""
    return tuple(
        PartitionPlan(
            tp,
            current[tp],
            log_start[tp],
            log_end[tp],
            new_offset(mode, current[tp], log_start[tp], log_end[tp], (found or {}).get(tp)),
            requested_offset(mode, current[tp], log_start[tp], log_end[tp], (found or {}).get(tp)),
        )
        for tp in sorted(current)
    )


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
