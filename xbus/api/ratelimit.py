"""Token buckets: a steady rate of requests per key (an API token, or the address of a client
whose tokens are refused), with room for a burst.

Pure (the caller passes the time), so that its guarantee can be tested without waiting: over any
interval of ``t`` seconds a key is allowed at most ``burst + rate_per_second * t`` requests.

The buckets live in the memory of one API process: with N processes behind a load balancer a token
may make N times the rate. That keeps every request free of a shared store's round trip; a limit
across processes belongs in the load balancer or gateway in front of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One bucket per key, created full when the key is first seen.

    For API tokens the keys are the ids of tokens that passed verification, so there are at most
    as many buckets as tokens in use. For refused requests they are client addresses, which an
    attacker can vary: past ``max_keys`` buckets, those full again (their key quiet for
    ``burst / rate`` seconds) are dropped, and a dropped key starts full, as it would have been.
    """

    def __init__(self, rate_per_second: float, burst: int, max_keys: int = 100_000) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate_per_second = rate_per_second
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> float:
        """Take one request from ``key``'s bucket at time ``now`` (seconds, monotonic): 0.0 if allowed,
        else how many seconds until it would be (nothing is taken then)."""
        bucket = self._refilled(key, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_second

    def waiting(self, key: str, now: float) -> float:
        """How many seconds until ``key`` may take one (0.0: now); takes nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        return max(0.0, 1.0 - self._refilled(key, now).tokens) / self.rate_per_second

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._drop_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        elif now > bucket.at:  # a clock that goes back refills nothing
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_second)
            bucket.at = now
        return bucket

    def _drop_full(self, now: float) -> None:
        full_after = self.burst / self.rate_per_second
        for key in [key for key, bucket in self._buckets.items() if now - bucket.at >= full_after]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
