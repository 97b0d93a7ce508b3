"""The replay plan as arithmetic: every mode, clamping to the log, and what the command line accepts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest
from aiokafka import TopicPartition

from infrastructure.groups import GroupDescription
from xbus.replay.plan import (
    BadReplayRequest,
    Mode,
    ModeKind,
    ReplayPlan,
    TopicSelection,
    merge_selections,
    new_offset,
    parse_datetime_ms,
    parse_mode,
    parse_selection,
    plan_partitions,
)
from xbus.replay.timesearch import offsets_at_time

A = TopicPartition("xosp.users", 0)
B = TopicPartition("xosp.users", 1)
C = TopicPartition("xosp.accounts", 0)


@pytest.mark.parametrize(
    ("mode", "current", "expected"),
    [
        (Mode(ModeKind.TO_EARLIEST), 70, 20),
        (Mode(ModeKind.TO_LATEST), 70, 100),
        (Mode(ModeKind.TO_OFFSET, 50), 70, 50),
        (Mode(ModeKind.SHIFT_BY, -30), 70, 40),
        (Mode(ModeKind.SHIFT_BY, 10), 70, 80),
    ],
)
def test_each_mode_moves_within_the_log(mode: Mode, current: int, expected: int) -> None:
    assert new_offset(mode, current, log_start=20, log_end=100) == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (Mode(ModeKind.TO_OFFSET, 5), 20),
        (Mode(ModeKind.TO_OFFSET, -1), 20),
        (Mode(ModeKind.TO_OFFSET, 500), 100),
        (Mode(ModeKind.SHIFT_BY, -1000), 20),
        (Mode(ModeKind.SHIFT_BY, 1000), 100),
    ],
)
def test_offsets_outside_the_log_are_clamped_to_it(mode: Mode, expected: int) -> None:
    assert new_offset(mode, 70, log_start=20, log_end=100) == expected


@pytest.mark.parametrize("kind", [ModeKind.TO_DATETIME, ModeKind.BY_DURATION])
def test_time_modes_go_to_the_offset_found_for_their_time(kind: ModeKind) -> None:
    assert new_offset(Mode(kind, 1), 70, log_start=20, log_end=100, found=33) == 33
    with pytest.raises(ValueError, match="needs the offset found"):
        new_offset(Mode(kind, 1), 70, log_start=20, log_end=100)


def test_a_clamped_partition_says_where_the_mode_pointed_as_kafkas_tool_does() -> None:
    current: dict[TopicPartition, int | None] = {A: 70, B: 70, C: 70}
    high, low, inside = (
        plan_partitions(Mode(ModeKind.SHIFT_BY, shift), {tp: current[tp]}, {tp: 20}, {tp: 100})[0]
        for tp, shift in ((A, 500), (B, -500), (C, 5))
    )
    assert (high.new, high.requested, high.clamped) == (100, 570, True)
    assert high.clamp_note == "New offset (570) is higher than latest offset for xosp.users-0: set to 100"
    assert (low.new, low.requested, low.clamped) == (20, -430, True)
    assert low.clamp_note == "New offset (-430) is lower than earliest offset for xosp.users-1: set to 20"
    assert (inside.new, inside.requested, inside.clamped) == (75, 75, False)
    assert high.to_json()["clamped"] is True and inside.to_json()["requested"] == 75


def test_a_shift_of_a_partition_never_committed_leaves_it_alone() -> None:
    assert new_offset(Mode(ModeKind.SHIFT_BY, -5), None, log_start=0, log_end=10) is None


def test_plan_counts_events_re_read_and_skipped_per_partition() -> None:
    current: dict[TopicPartition, int | None] = {A: 70, B: 10, C: None}
    plans = plan_partitions(Mode(ModeKind.TO_OFFSET, 40), current, {A: 0, B: 0, C: 0}, {A: 100, B: 100, C: 100})

    by_tp = {p.tp: p for p in plans}
    assert [p.tp for p in plans] == [C, A, B]  # topic, then partition order
    assert (by_tp[A].new, by_tp[A].re_read, by_tp[A].skipped) == (40, 30, 0)
    assert (by_tp[B].new, by_tp[B].re_read, by_tp[B].skipped) == (40, 0, 30)
    assert (by_tp[C].new, by_tp[C].never_committed, by_tp[C].re_read, by_tp[C].skipped) == (40, True, 0, 0)


def test_a_plan_commits_only_moves_and_marks_only_partitions_moved_back() -> None:
    current: dict[TopicPartition, int | None] = {A: 70, B: 40, C: None}
    partitions = plan_partitions(Mode(ModeKind.TO_OFFSET, 40), current, {A: 0, B: 0, C: 0}, {A: 100, B: 100, C: 100})
    plan = ReplayPlan("g", Mode(ModeKind.TO_OFFSET, 40), None, None, None, GroupDescription("g", "Empty"), partitions)

    assert plan.offsets == {A: 40, C: 40}  # B is already there
    assert plan.marks == {A: 70}  # C was never read: nothing is read *again* there
    assert (plan.re_read, plan.skipped, plan.never_committed) == (30, 0, 1)


def test_exactly_one_mode_is_required() -> None:
    with pytest.raises(BadReplayRequest, match=r"exactly one .*\(got none\)") as none:
        parse_mode()
    with pytest.raises(BadReplayRequest, match="got --to-earliest and --shift-by"):
        parse_mode(to_earliest=True, shift_by=-3)
    assert none.value.exit_code == 2
    assert parse_mode(to_latest=True) == Mode(ModeKind.TO_LATEST)
    assert parse_mode(to_offset=0) == Mode(ModeKind.TO_OFFSET, 0)
    assert parse_mode(shift_by=-3) == Mode(ModeKind.SHIFT_BY, -3)


def test_a_duration_goes_back_from_now() -> None:
    mode = parse_mode(by_duration="2h")
    assert mode == Mode(ModeKind.BY_DURATION, 7_200_000)
    assert mode.at_ms(now_ms=10_000_000) == 2_800_000
    for bad in ("2 hours", "forever"):
        with pytest.raises(BadReplayRequest, match="--by-duration"):
            parse_mode(by_duration=bad)


def test_a_datetime_without_an_offset_is_utc() -> None:
    utc = int(dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC).timestamp() * 1000)
    assert parse_datetime_ms("2025-03-01T09:30:00") == utc
    assert parse_datetime_ms("2025-03-01T09:30:00Z") == utc
    assert parse_datetime_ms("2025-03-01T11:30:00+02:00") == utc
    assert parse_datetime_ms("2025-03-01") == utc - (9 * 60 + 30) * 60_000
    assert parse_mode(to_datetime="2025-03-01T09:30Z").at_ms(now_ms=0) == utc
    with pytest.raises(BadReplayRequest, match="--to-datetime 'yesterday' is not an ISO 8601 time"):
        parse_mode(to_datetime="yesterday")


def test_topic_selections_name_a_topic_and_maybe_partitions() -> None:
    assert parse_selection("xosp.users") == TopicSelection("xosp.users")
    assert parse_selection("xosp.users:0,3") == TopicSelection("xosp.users", frozenset({0, 3}))
    for bad, reason in [
        (":1", "name a topic"),
        ("xosp.users:", "comma list of numbers"),
        ("xosp.users:a", "comma list of numbers"),
        ("xosp.users:1,,2", "comma list of numbers"),
        ("xosp.users:-1", "start at 0"),
    ]:
        with pytest.raises(BadReplayRequest, match=reason):
            parse_selection(bad)


def test_a_topic_selected_twice_gets_the_union() -> None:
    merged = merge_selections(
        [
            parse_selection("xosp.users:0"),
            parse_selection("xosp.users:2"),
            parse_selection("xosp.accounts:1"),
            parse_selection("xosp.accounts"),
        ]
    )
    assert merged == {"xosp.users": frozenset({0, 2}), "xosp.accounts": None}


class FakeLog:
    """Partitions as lists of (offset, timestamp): what a broker would hand a seeking consumer."""

    def __init__(self, records: Mapping[TopicPartition, list[tuple[int, int]]]) -> None:
        self.records = records
        self.rounds = 0

    async def __call__(self, probes: Mapping[TopicPartition, int]) -> dict[TopicPartition, tuple[int, int] | None]:
        self.rounds += 1
        return {tp: next((r for r in self.records[tp] if r[0] >= at), None) for tp, at in probes.items()}


async def test_time_search_finds_the_first_record_at_or_after_the_time() -> None:
    records = [(offset, 1000 + offset * 10) for offset in range(5, 1005)]  # log start 5, one record per 10 ms
    log = FakeLog({A: records})

    assert await offsets_at_time(log, {A: (5, 1005)}, at_ms=1000 + 500 * 10) == {A: 500}
    assert await offsets_at_time(log, {A: (5, 1005)}, at_ms=1000 + 500 * 10 - 3) == {A: 500}
    assert log.rounds <= 2 * 11  # two searches of log2(1000) rounds each


async def test_time_search_before_the_first_record_is_the_log_start_and_after_the_last_the_log_end() -> None:
    log = FakeLog({A: [(o, 5000 + o) for o in range(3, 13)], B: []})
    bounds = {A: (3, 13), B: (0, 0)}

    assert await offsets_at_time(log, bounds, at_ms=0) == {A: 3, B: 0}
    assert await offsets_at_time(log, bounds, at_ms=10**12) == {A: 13, B: 0}


async def test_time_search_with_equal_timestamps_and_gaps_in_offsets() -> None:
    # several records share a millisecond; offsets 20-29 do not exist (compacted away)
    records = [(o, 100) for o in range(10)] + [(o, 200) for o in range(10, 20)] + [(o, 300) for o in range(30, 40)]
    log = FakeLog({A: records, B: records})

    found = await offsets_at_time(log, {A: (0, 40), B: (0, 40)}, at_ms=200)
    assert found == {A: 10, B: 10}
    after_gap = (await offsets_at_time(log, {A: (0, 40)}, at_ms=250))[A]
    assert 20 <= after_gap <= 30  # any offset in the gap reads offset 30 first
    assert next(r for r in records if r[0] >= after_gap) == (30, 300)
