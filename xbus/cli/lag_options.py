"""The lag options `xbus lag` and `xbus monitor` share, from their command lines to LagOptions."""

from __future__ import annotations

from collections.abc import Sequence

from xbus.durations import parse_duration_ms
from xbus.errors import XbusError
from xbus.lag.watch import LagOptions
from xbus.settings import Settings


def lag_options(
    settings: Settings,
    *,
    groups: Sequence[str],
    topics: Sequence[str],
    window: int,
    warn_lag: int | None,
    warn_seconds: float | None,
    retention_margin: str,
) -> LagOptions:
    """``topics`` are topics.yaml names (the topic prefix is added); ``retention_margin`` is a
    duration such as ``1h`` (``forever``: every lagging partition with retention is at risk)."""
    try:
        margin = parse_duration_ms(retention_margin)
    except ValueError as error:
        raise XbusError(f"--retention-margin: {error}") from None
    return LagOptions(
        groups=tuple(groups),
        topics=tuple(settings.topic(topic) for topic in topics),
        window=window,
        warn_lag=warn_lag,
        warn_seconds=warn_seconds,
        retention_margin_seconds=float("inf") if margin < 0 else margin / 1000,
    )
