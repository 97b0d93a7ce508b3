"""The lag options `xbus lag` and `xbus monitor` share, from their command lines to LagOptions."""

from __future__ import annotations

from collections.abc import Sequence

import typer

from infrastructure.durations import parse_duration_ms
from infrastructure.errors import XbusError
from infrastructure.settings import Settings
from xbus.lag.watch import LagOptions

GROUP_OPTION = typer.Option(
    [], "--group", "-g", help="Only this consumer group id as listed (repeatable); default: every group."
)
TOPIC_OPTION = typer.Option(
    [], "--topic", "-t", help="Only this topic from topics.yaml, XBUS_TOPIC_PREFIX is added (repeatable)."
)
WARN_LAG_OPTION = typer.Option(None, "--warn-lag", min=0, help="WARN a partition with more messages of lag than this.")
WARN_SECONDS_OPTION = typer.Option(
    None, "--warn-seconds", min=0, help="WARN a partition more seconds behind than this."
)
RETENTION_MARGIN_OPTION = typer.Option(
    "1h", "--retention-margin", help="Flag a lagging partition that loses data sooner than this (30m, 12h, 2d)."
)


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
        stall_seconds=settings.stall_after_seconds,
    )
