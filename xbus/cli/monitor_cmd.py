"""`xbus monitor`: sample lag continuously and serve it (Prometheus /metrics, JSON, the live page).

Binds its socket itself before serving, so that ``--port 0`` can print the port it got, and an
address in use is one readable line instead of a uvicorn traceback.
"""

from __future__ import annotations

import asyncio
import signal
import socket

import structlog
import typer
import uvicorn

from xbus.cli.common import out, run, settings
from xbus.cli.lag_options import lag_options
from xbus.errors import XbusError
from xbus.lag.watch import LagOptions, LagWatcher
from xbus.monitor import LagSampler, create_app
from xbus.platform import connect

log = structlog.get_logger("xbus.monitor")

#: Next to the ports of Prometheus exporters of the Kafka world (kafka-lag-exporter's 8000 is too common).
DEFAULT_PORT = 9470


class MonitorPortUnavailable(XbusError):
    exit_code = 2


def monitor(
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 to be scraped from other machines."),
    port: int = typer.Option(DEFAULT_PORT, min=0, max=65535, help="Port to listen on; 0 picks a free one (printed)."),
    interval: float = typer.Option(5.0, min=0.1, help="Seconds between two lag samples."),
    window: int = typer.Option(10, min=2, help="Samples each partition's status is judged over."),
    group: list[str] = typer.Option(
        [], "--group", "-g", help="Only this consumer group id as listed (repeatable); default: every group."
    ),
    topic: list[str] = typer.Option(
        [], "--topic", "-t", help="Only this topic from topics.yaml, XBUS_TOPIC_PREFIX is added (repeatable)."
    ),
    warn_lag: int | None = typer.Option(None, min=0, help="WARN a partition with more messages of lag than this."),
    warn_seconds: float | None = typer.Option(None, min=0, help="WARN a partition more seconds behind than this."),
    retention_margin: str = typer.Option(
        "1h", help="Flag a lagging partition that loses data sooner than this (30m, 12h, 2d)."
    ),
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
    listening = _bind(host, port)
    run(_serve(listening, options, interval))


async def _serve(listening: socket.socket, options: LagOptions, interval: float) -> None:
    stop = asyncio.Event()
    endpoints = await connect(settings())
    async with LagWatcher(settings(), endpoints, options) as watcher:
        sampler = LagSampler(watcher, interval)
        config = uvicorn.Config(create_app(sampler), log_config=None, access_log=False, lifespan="off")
        server = uvicorn.Server(config)

        def shut_down() -> None:
            stop.set()
            server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # uvicorn installs its own handlers while serving and sends the signal again once it has
            # stopped; this one makes that second delivery (and any before serving) a clean stop.
            loop.add_signal_handler(sig, shut_down)
        sampling = asyncio.create_task(sampler.run(stop))
        host, port = listening.getsockname()[:2]
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        log.info("monitor serving", url=url, interval=interval, window=options.window)
        out.print(f"serving the lag page on {url} (/metrics, /v1/lag, /v1/lag/history); Ctrl-C stops", highlight=False)
        try:
            await server.serve(sockets=[listening])
        finally:
            shut_down()
            await sampling


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise MonitorPortUnavailable(
            f"cannot listen on {host}:{port} ({error.strerror}); choose another --port, or 0 for any free one"
        ) from None
    return listening
