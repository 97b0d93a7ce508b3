"""`xbus monitor`: sample lag continuously and serve it (Prometheus /metrics, JSON, the live page).

Served like `xbus serve` (xbus/api/server.py): the socket bound first, so that ``--port 0`` prints
the port it got and an address in use is one readable line.
"""

from __future__ import annotations

import asyncio
import socket

import structlog
import typer

from infrastructure.endpoints import connect
from xbus.api.server import ApiServer, bind
from xbus.cli.common import out, run, settings
from xbus.cli.lag_options import (
    GROUP_OPTION,
    RETENTION_MARGIN_OPTION,
    TOPIC_OPTION,
    WARN_LAG_OPTION,
    WARN_SECONDS_OPTION,
    lag_options,
)
from xbus.lag.watch import LagOptions, LagWatcher
from xbus.monitor import LagSampler, create_app

log = structlog.get_logger("xbus.monitor")

#: Next to the ports of Prometheus exporters of the Kafka world (kafka-lag-exporter's 8000 is too common).
DEFAULT_PORT = 9470


def monitor(
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 to be scraped from other machines."),
    port: int = typer.Option(DEFAULT_PORT, min=0, max=65535, help="Port to listen on; 0 picks a free one (printed)."),
    interval: float = typer.Option(5.0, min=0.1, help="Seconds between two lag samples."),
    window: int = typer.Option(10, min=2, help="Samples each partition's status is judged over."),
    group: list[str] = GROUP_OPTION,
    topic: list[str] = TOPIC_OPTION,
    warn_lag: int | None = WARN_LAG_OPTION,
    warn_seconds: float | None = WARN_SECONDS_OPTION,
    retention_margin: str = RETENTION_MARGIN_OPTION,
) -> None:
    """Sample consumer lag every --interval seconds and serve it until Ctrl-C or SIGTERM: the live page at /,
    Prometheus gauges at /metrics, the latest report at /v1/lag, the charts' history at /v1/lag/history."""
    options = lag_options(
        settings(),
        groups=group,
        topics=topic,
        window=window,
        warn_lag=warn_lag,
        warn_seconds=warn_seconds,
        retention_margin=retention_margin,
    )
    listening = bind(host, port)
    run(_serve(listening, options, interval))


async def _serve(listening: socket.socket, options: LagOptions, interval: float) -> None:
    stop = asyncio.Event()
    endpoints = await connect(settings())
    async with LagWatcher(settings(), endpoints, options) as watcher:
        sampler = LagSampler(watcher, interval)
        server = ApiServer(create_app(sampler), listening)
        server.stop_on_signals(also=stop.set)
        sampling = asyncio.create_task(sampler.run(stop))
        try:
            await server.start()
            log.info("monitor serving", url=server.url, interval=interval, window=options.window)
            out.print(
                f"serving the lag page on {server.url} (/metrics, /v1/lag, /v1/lag/history); Ctrl-C stops",
                highlight=False,
            )
            await server.wait()
        finally:
            stop.set()
            await sampling
