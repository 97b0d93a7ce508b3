"""`xbus lag`: consumer lag per group and partition, in messages and seconds, with a status.

A status needs a few samples (README, "Status rules"), so even the one-shot form samples
``--samples`` times ``--interval`` apart and prints the last report. The exit code is 0 whatever
the statuses: lag is information, not a failure of the command; a STALL or STOP group is named on
the last line (and is in the JSON) for whoever reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import typer
from rich.console import Group as Renderables
from rich.console import RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from infrastructure.endpoints import connect
from xbus.cli.common import out, run, settings
from xbus.cli.lag_options import (
    GROUP_OPTION,
    RETENTION_MARGIN_OPTION,
    TOPIC_OPTION,
    WARN_LAG_OPTION,
    WARN_SECONDS_OPTION,
    lag_options,
)
from xbus.lag.model import GroupReport, LagReport, Status
from xbus.lag.watch import LagOptions, LagWatcher

STATUS_STYLE = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.REWIND: "magenta",
    Status.STALL: "red",
    Status.STOP: "bold red",
}


def lag(
    groups: list[str] = GROUP_OPTION,
    topics: list[str] = TOPIC_OPTION,
    as_json: bool = typer.Option(False, "--json", help="The last report as one JSON document."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh every --interval until Ctrl-C."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between samples."),
    window: int = typer.Option(10, "--window", min=1, help="Samples per partition the status rules look at."),
    samples: int = typer.Option(3, "--samples", min=1, help="Samples taken before printing (one-shot form)."),
    warn_lag: int | None = WARN_LAG_OPTION,
    warn_seconds: float | None = WARN_SECONDS_OPTION,
    retention_margin: str = RETENTION_MARGIN_OPTION,
) -> None:
    """Consumer lag per group and partition: offsets, lag in messages and seconds, owner, status,
    time to data loss, and the provisioning tracker's business lag."""
    options = lag_options(
        settings(),
        groups=groups,
        topics=topics,
        window=window,
        warn_lag=warn_lag,
        warn_seconds=warn_seconds,
        retention_margin=retention_margin,
    )
    if watch:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how --watch ends
            run(_watch(options, interval))
        return
    report = run(_sampled(options, samples, interval))
    if as_json:
        print(json.dumps(report.to_json(), indent=2), flush=True)
        return
    out.print(render(report))


async def _sampled(options: LagOptions, samples: int, interval: float) -> LagReport:
    endpoints = await connect(settings())
    async with LagWatcher(settings(), endpoints, options) as watcher:
        report = await watcher.report()
        for _ in range(samples - 1):
            await asyncio.sleep(interval)
            report = await watcher.report()
    return report


async def _watch(options: LagOptions, interval: float) -> None:
    endpoints = await connect(settings())
    async with LagWatcher(settings(), endpoints, options) as watcher:
        with Live(render(await watcher.report()), console=out, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval)
                live.update(render(await watcher.report()), refresh=True)


def render(report: LagReport) -> RenderableType:
    parts: list[RenderableType] = [_table(group) for group in report.groups]
    if not report.groups:
        parts.append(Text("no consumer groups (under this group prefix)", style="dim"))
    parts.append(_business(report.business))
    if not report.retention_enforced and any(
        p.time_to_loss_seconds is not None for g in report.groups for p in g.partitions
    ):
        parts.append(
            Text("time to loss: what Apache Kafka would do; the embedded broker never deletes records", style="dim")
        )
    stuck = [g for g in report.groups if g.status >= Status.STALL]
    if stuck:
        names = ", ".join(f"{g.group} {g.status.name}" for g in stuck)
        parts.append(Text(f"attention: {names} (exit code stays 0)", style="bold red"))
    return Renderables(*parts)


def _table(group: GroupReport) -> RenderableType:
    members = f"{len(group.members)} member(s)" if group.members else "no members"
    title = (
        f"[bold]{escape(group.group)}[/]  {escape(group.state or '?')}  {_status(group.status)}  {members}  "
        f"lag {group.lag} / {group.lag_seconds:.1f}s"
    )
    if not group.partitions:
        return Text.from_markup(f"{title}  [dim](no offsets committed on these topics, none assigned)[/]")
    table = Table(title=title, title_justify="left")
    for column in ("topic", "partition", "committed", "log end", "lag", "lag seconds"):
        table.add_column(column, justify="left" if column == "topic" else "right", no_wrap=True)
    for column in ("owner", "status", "reason", "time to loss"):
        table.add_column(column, no_wrap=column != "reason")
    for p in group.partitions:
        lag = p.lag
        loss = _duration(p.time_to_loss_seconds)
        table.add_row(
            escape(lag.topic),
            str(lag.partition),
            "—" if lag.committed is None else str(lag.committed),
            str(lag.log_end),
            str(lag.lag),
            f"{lag.lag_seconds:.1f}",
            escape(lag.owner or "—"),
            _status(p.status),
            escape(p.reason),
            f"[red]{loss} at risk[/]" if p.retention_at_risk else loss,
        )
    return table


def _business(business: dict[str, float | None]) -> Text:
    if not business:
        return Text("business lag: no provisioning tracker schema here", style="dim")
    ages = ", ".join(f"{kind} {_duration(age) if age is not None else '—'}" for kind, age in business.items())
    return Text(f"business lag (oldest open provisioning flow): {ages}")


def _status(status: Status) -> str:
    return f"[{STATUS_STYLE[status]}]{status.name}[/]"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
