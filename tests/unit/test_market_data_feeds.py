"""How soon a failed market-data feed starts again (the supervisor's backoff, pure)."""

from __future__ import annotations

from consumers.market_data.feeds import RestartBackoff


def test_a_feed_that_keeps_failing_at_once_waits_twice_as_long_each_time_up_to_a_minute() -> None:
    backoff, now, waits = RestartBackoff(), 0.0, []
    for _ in range(9):
        backoff.failed(now, ran_for=0.5)
        assert not backoff.may_start(now)
        waits.append(backoff.seconds_left(now))
        now += waits[-1]
        assert backoff.may_start(now)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_feed_that_ran_a_while_before_failing_starts_again_after_a_second() -> None:
    backoff = RestartBackoff()
    for _ in range(5):
        backoff.failed(0.0, ran_for=0.1)
    backoff.failed(100.0, ran_for=75.0)
    assert backoff.seconds_left(100.0) == 1.0


def test_a_feed_never_failed_may_start() -> None:
    assert RestartBackoff().may_start(0.0)
