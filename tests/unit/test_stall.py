"""The stuck-but-alive rule: lag above zero and a committed offset that has not moved for the stall time."""

from __future__ import annotations

from consumers.runtime.stall import PartitionState, StallWatch


def test_a_partition_with_lag_and_no_commit_for_the_stall_time_is_stalled() -> None:
    watch = StallWatch(stall_after=10)
    assert watch.observe("t", 0, committed=5, end=9, now=100).state is PartitionState.OK
    assert watch.observe("t", 0, committed=5, end=12, now=109.9).state is PartitionState.OK
    stalled = watch.observe("t", 0, committed=5, end=12, now=110)
    assert stalled.state is PartitionState.STALLED
    assert (stalled.lag, stalled.idle_seconds) == (7, 10)


def test_a_commit_restarts_the_clock() -> None:
    watch = StallWatch(stall_after=10)
    watch.observe("t", 0, committed=5, end=9, now=100)
    moved = watch.observe("t", 0, committed=6, end=9, now=108)
    assert (moved.state, moved.idle_seconds) == (PartitionState.OK, 0)
    assert watch.observe("t", 0, committed=6, end=9, now=117).state is PartitionState.OK
    assert watch.observe("t", 0, committed=6, end=9, now=118).state is PartitionState.STALLED


def test_an_idle_partition_without_lag_is_never_stalled() -> None:
    watch = StallWatch(stall_after=10)
    for now in range(0, 1000, 50):
        assert watch.observe("t", 0, committed=42, end=42, now=now).state is PartitionState.OK


def test_lag_arriving_after_a_quiet_hour_is_given_the_full_stall_time() -> None:
    watch = StallWatch(stall_after=10)
    watch.observe("t", 0, committed=42, end=42, now=0)
    assert watch.observe("t", 0, committed=42, end=50, now=3600).state is PartitionState.OK
    assert watch.observe("t", 0, committed=42, end=50, now=3609).state is PartitionState.OK
    assert watch.observe("t", 0, committed=42, end=50, now=3610).state is PartitionState.STALLED


def test_partitions_are_judged_apart_and_forgotten_when_revoked() -> None:
    watch = StallWatch(stall_after=10)
    watch.observe("t", 0, committed=0, end=5, now=0)
    watch.observe("t", 1, committed=0, end=5, now=0)
    assert watch.observe("t", 0, committed=0, end=5, now=20).state is PartitionState.STALLED
    assert watch.observe("t", 1, committed=3, end=5, now=20).state is PartitionState.OK
    watch.forget("t", 0)
    assert watch.observe("t", 0, committed=0, end=5, now=25).state is PartitionState.OK


def test_a_batch_under_way_that_completes_statements_is_progress_however_long_it_takes() -> None:
    """A partition working through a backlog commits only when its batch does; while the batch's
    statements keep completing, it is busy, not stuck."""
    watch = StallWatch(stall_after=10)
    watch.observe("t", 0, committed=5, end=900, now=100)
    busy = watch.observe("t", 0, committed=5, end=900, now=130, progressed_at=125)
    assert (busy.state, busy.idle_seconds) == (PartitionState.OK, 5)
    assert watch.observe("t", 0, committed=5, end=900, now=134.9, progressed_at=125).state is PartitionState.OK


def test_a_batch_that_stopped_completing_statements_is_stalled_after_the_stall_time() -> None:
    watch = StallWatch(stall_after=10)
    watch.observe("t", 0, committed=5, end=900, now=100)
    stuck = watch.observe("t", 0, committed=5, end=900, now=135, progressed_at=125)
    assert (stuck.state, stuck.idle_seconds) == (PartitionState.STALLED, 10)


def test_progress_older_than_the_last_commit_does_not_turn_the_clock_back() -> None:
    watch = StallWatch(stall_after=10)
    watch.observe("t", 0, committed=5, end=900, now=100)
    watch.observe("t", 0, committed=6, end=900, now=120)
    assert watch.observe("t", 0, committed=6, end=900, now=130, progressed_at=105).state is PartitionState.STALLED
