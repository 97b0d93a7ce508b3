"""The per-token rate limit: a token bucket never lets a key exceed its burst plus its rate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xbus.api.ratelimit import TokenBuckets

RATES = st.floats(min_value=0.01, max_value=1_000.0)
BURSTS = st.integers(min_value=1, max_value=8)
#: Gaps between successive requests, in refill periods (1 / rate): many at the same instant, some long pauses.
GAPS = st.lists(
    st.one_of(st.just(0.0), st.sampled_from([0.1, 0.5, 0.9, 1.0, 1.5]), st.floats(min_value=0.0, max_value=3.0)),
    min_size=1,
    max_size=300,
)


def allowed_times(buckets: TokenBuckets, gaps: list[float]) -> list[float]:
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap / buckets.rate_per_second
        if buckets.take("k", now) == 0.0:
            allowed.append(now)
    return allowed


@given(RATES, BURSTS, GAPS)
def test_no_interval_allows_more_than_burst_plus_rate_times_its_length(
    rate: float, burst: int, gaps: list[float]
) -> None:
    allowed = allowed_times(TokenBuckets(rate, burst), gaps)
    for first in range(len(allowed)):
        for last in range(first, len(allowed)):
            length = allowed[last] - allowed[first]
            assert last - first + 1 <= burst + rate * length + 1e-6


@given(RATES, BURSTS)
def test_a_burst_is_allowed_at_once_and_no_more(rate: float, burst: int) -> None:
    buckets = TokenBuckets(rate, burst)
    assert [buckets.take("k", 10.0) for _ in range(burst)] == [0.0] * burst
    assert buckets.take("k", 10.0) == pytest.approx(1 / rate)


@given(RATES, BURSTS, GAPS)
def test_waiting_the_answered_time_is_enough(rate: float, burst: int, gaps: list[float]) -> None:
    buckets = TokenBuckets(rate, burst)
    now = 0.0
    for gap in gaps:
        now += gap / rate
        wait = buckets.take("k", now)
        if wait > 0:
            now += wait + 1e-9  # floating point: a hair over the wait
            assert buckets.take("k", now) == 0.0


@given(st.floats(min_value=0.1, max_value=100.0), BURSTS, st.integers(min_value=1, max_value=200))
def test_requests_at_the_rate_are_never_refused(rate: float, burst: int, count: int) -> None:
    buckets = TokenBuckets(rate, burst)
    # a hair slower than the rate, so that floating point cannot make a request come early
    assert all(buckets.take("k", i * (1 / rate) * (1 + 1e-9)) == 0.0 for i in range(count))


def test_keys_have_buckets_of_their_own() -> None:
    buckets = TokenBuckets(1.0, 2)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert buckets.take("b", 0.0) == 0.0


def test_a_clock_going_back_refills_nothing() -> None:
    buckets = TokenBuckets(1.0, 1)
    assert buckets.take("k", 100.0) == 0.0
    assert buckets.take("k", 50.0) > 0
    assert buckets.take("k", 100.5) == pytest.approx(0.5)


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    buckets = TokenBuckets(10.0, 3)
    buckets.take("k", 0.0)
    assert [buckets.take("k", 3_600.0) for _ in range(4)][-1] > 0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_a_bucket_that_could_never_allow_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate, burst)


def test_waiting_says_how_long_and_takes_nothing() -> None:
    buckets = TokenBuckets(1.0, 2)
    assert buckets.waiting("k", 0.0) == 0.0 and len(buckets) == 0  # an unseen key is full, and costs no bucket
    buckets.take("k", 0.0)
    buckets.take("k", 0.0)
    assert buckets.waiting("k", 0.0) == pytest.approx(1.0)
    assert buckets.waiting("k", 0.25) == pytest.approx(0.75)
    assert buckets.waiting("k", 0.25) == pytest.approx(0.75)  # asking took nothing
    assert buckets.take("k", 1.0) == 0.0


def test_past_max_keys_the_full_buckets_are_dropped_and_the_busy_kept() -> None:
    buckets = TokenBuckets(1.0, 2, max_keys=3)
    for key in ("a", "b", "c"):
        buckets.take(key, 0.0)
    buckets.take("c", 1.5)  # c is busy again; a and b are full at 2.0 (burst / rate after their take)
    buckets.take("d", 2.0)
    assert len(buckets) == 2 and buckets.waiting("c", 2.0) == 0.0
    buckets.take("c", 2.0)
    buckets.take("c", 2.0)
    assert buckets.waiting("c", 2.0) > 0  # kept: its bucket was not reset by the pruning
