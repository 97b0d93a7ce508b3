"""Time to data loss: how long until retention deletes the oldest record a group has not read.

Retention deletes a record once it is ``retention`` old, so with nothing consumed the oldest
unconsumed record is lost in ``a = its timestamp + retention - now`` seconds. A consumer that
moves meanwhile at ``r`` records/s while producers append at ``p`` records/s reaches newer
records; the figure here assumes, as lag exporters do, that records are spread evenly in time
over the log, so the unconsumed head ages at ``1 - r/p`` of wall-clock speed and is lost in
``a / (1 - r/p)``. A consumer at least as fast as the producers (and moving) is catching up:
nothing is at risk at the current rates.
"""

from __future__ import annotations


def time_to_loss(
    retention_seconds: float | None, oldest_unconsumed_age: float, consumed_rate: float, produced_rate: float
) -> float | None:
    """Seconds until the oldest unconsumed record is deleted, at the current rates (records/s);
    None when nothing is lost at these rates, or without retention."""
    if retention_seconds is None:
        return None
    left = retention_seconds - oldest_unconsumed_age
    if left <= 0:
        return 0.0
    consumed, produced = max(consumed_rate, 0.0), max(produced_rate, 0.0)
    if consumed < produced:
        return left / (1 - consumed / produced)
    if consumed > 0:
        return None
    return left
