"""`xbus serve`: the HTTP API (publish over HTTP, provisioning status, lag) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import socket

import structlog
import typer

from infrastructure.endpoints import connect
from xbus.api.app import create_app
from xbus.api.server import ApiServer, bind
from xbus.cli.common import out, run, settings

log = structlog.get_logger("xbus.api")


def serve(
    host: str | None = typer.Option(
        None, help="Address to listen on (default: XBUS_API_HOST, 127.0.0.1); 0.0.0.0 to be reached from elsewhere."
    ),
    port: int | None = typer.Option(
        None, min=0, max=65535, help="Port (default: XBUS_API_PORT, 8080); 0 picks a free one (printed)."
    ),
) -> None:
    """Serve the HTTP API until Ctrl-C or SIGTERM: publish events, provisioning status, lag; OpenAPI at /docs."""
    listening = bind(host or settings().api_host, settings().api_port if port is None else port)
    run(_serve(listening))


async def _serve(listening: socket.socket) -> None:
    endpoints = await connect(settings())
    server = ApiServer(create_app(settings(), endpoints), listening)
    server.stop_on_signals()
    await server.start()
    log.info("api serving", url=server.url)
    out.print(f"serving on {server.url} (OpenAPI at {server.url}docs); Ctrl-C stops", highlight=False)
    await server.wait()
