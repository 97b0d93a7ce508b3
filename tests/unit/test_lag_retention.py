"""Time to data loss: when retention deletes the oldest record a group has not consumed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xbus.lag.retention import time_to_loss

HOUR = 3600.0


def test_a_consumer_slower_than_its_producers_loses_data_later_than_a_stopped_one() -> None:
    # half the producers' rate: the unconsumed head ages at half speed
    assert time_to_loss(HOUR, 600, consumed_rate=50, produced_rate=100) == pytest.approx(2 * (HOUR - 600))


def test_a_stopped_consumer_loses_the_oldest_record_when_it_reaches_retention() -> None:
    assert time_to_loss(HOUR, 600, consumed_rate=0, produced_rate=100) == HOUR - 600


def test_nothing_moving_at_all_still_loses_it_at_retention() -> None:
    assert time_to_loss(HOUR, 600, consumed_rate=0, produced_rate=0) == HOUR - 600


def test_a_consumer_catching_up_risks_nothing() -> None:
    assert time_to_loss(HOUR, 600, consumed_rate=100, produced_rate=100) is None
    assert time_to_loss(HOUR, 600, consumed_rate=10, produced_rate=0) is None


def test_a_record_already_past_retention_is_lost_now() -> None:
    assert time_to_loss(HOUR, HOUR + 1, consumed_rate=100, produced_rate=1) == 0
    assert time_to_loss(HOUR, HOUR, consumed_rate=0, produced_rate=0) == 0


def test_without_retention_nothing_is_ever_lost() -> None:
    assert time_to_loss(None, 10 * HOUR, consumed_rate=0, produced_rate=100) is None


def test_a_rewind_counts_as_not_consuming() -> None:
    assert time_to_loss(HOUR, 600, consumed_rate=-50, produced_rate=0) == HOUR - 600


@given(
    st.floats(1, 1e7),
    st.floats(0, 1e7),
    st.floats(0, 1e4),
    st.floats(0, 1e4),
)
def test_time_to_loss_is_never_negative_nor_sooner_than_standing_still(
    retention: float, age: float, consumed: float, produced: float
) -> None:
    loss = time_to_loss(retention, age, consumed, produced)
    standing_still = max(retention - age, 0.0)
    assert loss is None or loss >= standing_still * (1 - 1e-9)


def test_a_record_exactly_at_retention_is_lost_now_even_for_a_consumer_catching_up() -> None:
    assert time_to_loss(1000, 1000, consumed_rate=50.0, produced_rate=5.0) == 0.0


def test_rates_below_one_record_a_second_count_as_they_are() -> None:
    # a quiet topic: 0.5 record/s produced, 0.25 consumed; the head ages at half speed
    assert time_to_loss(1000, 100, consumed_rate=0.25, produced_rate=0.5) == 1800.0
