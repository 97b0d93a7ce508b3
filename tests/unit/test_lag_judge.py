"""The status rules of `xbus lag`, judged over a sliding window of samples (README, "Status rules")."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from infrastructure.groups import GroupMember
from xbus.lag.judge import LagJudge, Observation, Thresholds, loss_in
from xbus.lag.model import GroupLag, LagSample, PartitionLag, Status

TOPIC = "t.xosp.users"
MEMBER = GroupMember("member-1", "", "")


def lag_of(committed: int | None, end: int, partition: int = 0, lag_seconds: float | None = None) -> PartitionLag:
    lag = max(end - (committed or 0), 0)
    seconds = (1.0 if lag else 0.0) if lag_seconds is None else lag_seconds
    return PartitionLag(TOPIC, partition, committed, 0, end, lag, seconds, None, None)


def sample(
    at: float, *partitions: PartitionLag, members: tuple[GroupMember, ...] = (MEMBER,), group: str = "g"
) -> LagSample:
    return LagSample(at, (GroupLag(group, "Stable" if members else "Empty", members, partitions),))


def judged(
    offsets: Sequence[tuple[int | None, int]],
    members: tuple[GroupMember, ...] = (MEMBER,),
    window: int = 10,
    thresholds: Thresholds = Thresholds(),
) -> tuple[Status, str]:
    """Status and reason of one partition after samples of (committed, end), one a second."""
    judge = LagJudge(window, thresholds)
    for at, (committed, end) in enumerate(offsets):
        [report] = judge.judge(sample(at, lag_of(committed, end), members=members))
    [partition] = report.partitions
    return partition.status, partition.reason


def test_a_committed_offset_going_back_is_rewind_even_when_caught_up() -> None:
    status, reason = judged([(50, 50), (0, 50), (50, 50)])
    assert status is Status.REWIND
    assert "from 50 to 0" in reason


def test_lag_zero_once_in_the_window_is_ok_whatever_else_happened() -> None:
    assert judged([(10, 10), (10, 20), (10, 30)])[0] is Status.OK


def test_a_single_sample_is_not_judged_yet() -> None:
    assert judged([(0, 100)]) == (Status.OK, "one sample: not judged yet")


def test_lag_and_no_commit_across_the_window_and_no_member_is_stop() -> None:
    status, reason = judged([(5, 10), (5, 12), (5, 15)], members=())
    assert status is Status.STOP
    assert "no member" in reason


def test_lag_and_no_commit_while_a_member_holds_the_partition_is_stall() -> None:
    owner = GroupMember("m", "c", "h", (TopicPartition(TOPIC, 0),))
    assert judged([(5, 10), (5, 10), (5, 10)], members=(owner,))[0] is Status.STALL


def test_members_that_the_broker_says_hold_other_partitions_do_not_make_a_stall() -> None:
    elsewhere = GroupMember("m", "c", "h", (TopicPartition(TOPIC, 1),))
    assert judged([(5, 10), (5, 10), (5, 10)], members=(elsewhere,))[0] is Status.STOP


def test_members_without_reported_assignments_count_as_holding_it() -> None:
    """The embedded broker never reports assignments: a member may hold it, so it is alive but stuck."""
    assert judged([(None, 10), (None, 10)], members=(MEMBER,))[0] is Status.STALL


def test_offsets_moving_while_lag_grows_is_warn() -> None:
    status, reason = judged([(0, 10), (5, 20), (8, 30)])
    assert status is Status.WARN
    assert "10 to 22" in reason


def test_lag_that_grows_then_falls_within_the_window_is_ok() -> None:
    assert judged([(0, 10), (5, 20), (18, 25)])[0] is Status.OK


def test_thresholds_turn_an_ok_partition_into_warn_naming_the_threshold() -> None:
    status, reason = judged([(0, 100), (50, 120)], thresholds=Thresholds(warn_lag=50))
    assert status is Status.WARN
    assert "50 messages" in reason
    judge = LagJudge(10, Thresholds(warn_seconds=30))
    [report] = judge.judge(sample(0, lag_of(0, 10, lag_seconds=45.0)))
    assert report.partitions[0].status is Status.WARN
    assert "30s" in report.partitions[0].reason


def test_thresholds_do_not_hide_a_worse_status() -> None:
    assert judged([(5, 10), (5, 10)], members=(), thresholds=Thresholds(warn_lag=1))[0] is Status.STOP


STALL_AFTER = Thresholds(stall_seconds=10)


def test_no_commit_for_less_than_the_stall_time_is_catching_up_not_stall() -> None:
    """A service commits when a batch does; a batch of a backlog takes a while (issue 18)."""
    status, reason = judged([(5, 900)] * 6, thresholds=STALL_AFTER)
    assert status is Status.OK
    assert reason == "catching up: lag 895, committed offset 5 for 5.0s (stalled after 10s)"


def test_no_commit_for_the_stall_time_is_stall_even_beyond_the_window() -> None:
    status, reason = judged([(5, 900)] * 11, window=3, thresholds=STALL_AFTER)
    assert status is Status.STALL
    assert "committed offset 5 for 10.0s" in reason
    assert judged([(5, 900)] * 10, window=3, thresholds=STALL_AFTER)[0] is Status.OK


def test_a_commit_restarts_the_stall_clock() -> None:
    offsets = [(5, 900)] * 8 + [(6, 900)] * 9  # moved at 8 s; at 16 s unchanged for 8 s
    assert judged(offsets, window=3, thresholds=STALL_AFTER)[0] is Status.OK
    assert judged([*offsets, (6, 900), (6, 900)], window=3, thresholds=STALL_AFTER)[0] is Status.STALL


def test_caught_up_restarts_the_stall_clock() -> None:
    offsets = [(5, 5)] * 5 + [(5, 900)] * 9  # lag since 5 s: at 13 s for 8 s
    assert judged(offsets, window=3, thresholds=STALL_AFTER)[0] is Status.OK


def test_no_member_is_stop_at_once_whatever_the_stall_time() -> None:
    """Nobody consuming is a fact, not a judgement over time: STOP says "start a consumer"."""
    assert judged([(5, 900)] * 2, members=(), thresholds=STALL_AFTER)[0] is Status.STOP


def test_a_partition_gone_from_the_samples_starts_its_stall_clock_again_when_it_comes_back() -> None:
    judge = LagJudge(3, STALL_AFTER)
    for at in range(8):
        judge.judge(sample(at, lag_of(5, 900)))
    judge.judge(sample(8))  # the group's partition left the sample
    for at in range(9, 18):
        [report] = judge.judge(sample(at, lag_of(5, 900)))
    assert report.partitions[0].status is Status.OK  # 8 s since it came back, not 17


def test_a_group_is_as_bad_as_its_worst_partition_and_ok_without_partitions() -> None:
    judge = LagJudge(3)
    for at in range(3):
        [report] = judge.judge(sample(at, lag_of(10, 10, 0), lag_of(3, 10 + at, 1), members=()))
    assert [p.status for p in report.partitions] == [Status.OK, Status.STOP]
    assert report.status is Status.STOP
    [empty] = LagJudge().judge(sample(0))
    assert empty.status is Status.OK


def test_the_window_slides_old_samples_out() -> None:
    """Caught up long ago no longer counts: once the window holds only stuck samples, it is STOP."""
    offsets = [(10, 10), (10, 12), (10, 14), (10, 16)]
    assert judged(offsets, members=(), window=4)[0] is Status.OK
    assert judged(offsets, members=(), window=3)[0] is Status.STOP


def test_a_partition_that_leaves_the_sample_is_forgotten() -> None:
    judge = LagJudge(5)
    judge.judge(sample(0, lag_of(50, 50)))
    judge.judge(sample(1))
    [report] = judge.judge(sample(2, lag_of(0, 50)))  # not a rewind: its history is gone
    assert report.partitions[0].reason == "one sample: not judged yet"


def test_time_to_loss_is_reported_for_lagging_partitions_with_retention() -> None:
    judge = LagJudge(3, retention_margin_seconds=600)
    retained = PartitionLag(TOPIC, 0, 0, 0, 10, 10, 100.0, None, 1_000_000)
    [report] = judge.judge(sample(0, retained))
    assert report.partitions[0].time_to_loss_seconds == 900
    assert not report.partitions[0].retention_at_risk
    older = PartitionLag(TOPIC, 0, 0, 0, 10, 10, 500.0, None, 1_000_000)
    [report] = judge.judge(sample(1, older))
    assert report.partitions[0].time_to_loss_seconds == 500
    assert report.partitions[0].retention_at_risk


offset_runs = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=12)


@given(offset_runs.filter(lambda runs: len(runs) < 10), st.integers(0, 12), st.booleans())
def test_a_window_with_a_caught_up_sample_and_no_rewind_is_always_ok(
    pairs: list[tuple[int, int]], where: int, alive: bool
) -> None:
    committed = sorted(c for c, _ in pairs)
    runs = [(c, c + lag) for c, (_, lag) in zip(committed, pairs, strict=True)]
    at = where % (len(runs) + 1)
    position = committed[min(at, len(runs) - 1)]
    runs.insert(at, (position, position))
    assert judged(runs, members=(MEMBER,) if alive else ())[0] is Status.OK


@given(offset_runs, st.booleans())
def test_a_backward_commit_anywhere_in_the_window_is_rewind(offsets: list[tuple[int, int]], alive: bool) -> None:
    runs = [*offsets, (offsets[-1][0] + 1, 60), (offsets[-1][0], 60)]
    assert judged(runs, members=(MEMBER,) if alive else ())[0] is Status.REWIND


@given(st.integers(1, 100), st.lists(st.integers(0, 100), min_size=1, max_size=9))
def test_a_stuck_commit_with_lag_is_stop_or_stall_by_membership(committed: int, growth: list[int]) -> None:
    ends = [committed + 1 + sum(growth[: i + 1]) for i in range(len(growth))]
    runs = [(committed, committed + 1), *((committed, end) for end in ends)]
    assert judged(runs, members=())[0] is Status.STOP
    assert judged(runs, members=(MEMBER,))[0] is Status.STALL


def _retained(at: float, committed: int | None, end: int, age: float, start: int = 0) -> Observation:
    lag = end - (start if committed is None else committed)
    return Observation(at, PartitionLag(TOPIC, 0, committed, start, end, lag, age, None, 1_000_000))


def test_time_to_loss_uses_the_windows_consumed_and_produced_rates() -> None:
    """Offsets that move, from offsets and times that are not zero: 5 records/s consumed, 10
    produced, so the unconsumed head ages at half speed and the 900 s left last 1,800 s. (Every
    earlier test had equal offsets in its window, and a mutation of these rates went unnoticed.)"""
    window = [_retained(100.0, 100, 200, 80.0), _retained(110.0, 150, 300, 100.0)]
    assert loss_in(window) == 1800.0


def test_time_to_loss_counts_records_from_the_log_start_before_the_first_commit() -> None:
    window = [_retained(50.0, None, 120, 80.0, start=20), _retained(60.0, None, 220, 100.0, start=20)]
    assert loss_in(window) == 900.0  # nothing consumed: 100 records/s produced, lost when 900 s pass


def test_a_group_consuming_faster_than_its_producers_risks_nothing() -> None:
    window = [_retained(100.0, 100, 200, 100.0), _retained(110.0, 190, 250, 90.0)]  # 9/s against 5/s
    assert loss_in(window) is None


def test_a_window_of_one_instant_has_no_rates_and_loses_at_retention() -> None:
    window = [_retained(100.0, 100, 200, 100.0), _retained(100.0, 150, 300, 100.0)]
    assert loss_in(window) == 900.0


def test_a_caught_up_partition_or_one_without_retention_has_no_time_to_loss() -> None:
    caught_up = [_retained(100.0, 100, 200, 80.0), _retained(110.0, 300, 300, 0.0)]
    unlimited = Observation(110.0, PartitionLag(TOPIC, 0, 150, 0, 300, 150, 100.0, None, None))
    assert loss_in(caught_up) is None and loss_in([unlimited]) is None


def test_the_judge_reports_the_rates_time_to_loss_and_the_risk_against_its_margin() -> None:
    judge = LagJudge(5, retention_margin_seconds=2_000)
    judge.judge(sample(100.0, _retained(100.0, 100, 200, 80.0).lag))
    [report] = judge.judge(sample(110.0, _retained(110.0, 150, 300, 100.0).lag))
    [partition] = report.partitions
    assert (partition.time_to_loss_seconds, partition.retention_at_risk) == (1800.0, True)


def test_the_reason_says_whether_the_partition_is_caught_up_now_or_was_within_the_window() -> None:
    assert judged([(10, 20), (20, 20)]) == (Status.OK, "caught up")
    assert judged([(20, 20), (20, 30)]) == (Status.OK, "caught up within the window")


def test_a_window_of_one_sample_is_allowed_and_of_none_refused() -> None:
    [report] = LagJudge(1).judge(sample(0, lag_of(5, 10)))
    assert report.partitions[0].reason == "one sample: not judged yet"
    try:
        LagJudge(0)
    except ValueError as error:
        assert "at least one sample" in str(error)
    else:
        raise AssertionError("a window of no sample was accepted")


def test_a_steady_lag_while_consuming_is_ok_and_a_lag_that_grows_with_a_pause_is_warn() -> None:
    assert judged([(0, 10), (5, 15), (10, 20)])[0] is Status.OK
    assert judged([(0, 10), (5, 20), (10, 25), (12, 35)])[0] is Status.WARN


def test_a_lag_at_a_warning_threshold_is_not_above_it() -> None:
    assert judged([(0, 50), (10, 60)], thresholds=Thresholds(warn_lag=50))[0] is Status.OK
    assert judged([(0, 50), (10, 61)], thresholds=Thresholds(warn_lag=50))[0] is Status.WARN
    judge = LagJudge(10, Thresholds(warn_seconds=30))
    [report] = judge.judge(sample(0, lag_of(0, 10, lag_seconds=30.0)))
    assert report.partitions[0].status is Status.OK


def test_a_loss_exactly_at_the_margin_is_not_at_risk() -> None:
    judge = LagJudge(3, retention_margin_seconds=900)
    [report] = judge.judge(sample(0, PartitionLag(TOPIC, 0, 0, 0, 10, 10, 100.0, None, 1_000_000)))
    assert (report.partitions[0].time_to_loss_seconds, report.partitions[0].retention_at_risk) == (900, False)
