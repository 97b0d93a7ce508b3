"""`xbus run SERVICE... | --all` and `xbus db migrate`."""

from __future__ import annotations

import asyncio
import signal

import typer

from consumers.runtime.discovery import resolve_services
from consumers.runtime.runner import ServiceRunner
from xbus.cli.common import out, run, settings
from xbus.platform import connect, load_catalogue

SERVICES_ARGUMENT = typer.Argument(None, help="Service names, or module:attribute of a Service.")
ALL_OPTION = typer.Option(False, "--all", help="Every installed service.")


def run_services(services: list[str] | None = SERVICES_ARGUMENT, everything: bool = ALL_OPTION) -> None:
    """Run services until SIGTERM or Ctrl-C: each finishes its batch, commits and leaves its group."""
    chosen = resolve_services(services or [], everything=everything)

    async def go() -> None:
        endpoints = await connect(settings())
        catalogue = load_catalogue(settings())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runners = [
            ServiceRunner(service, settings(), catalogue, endpoints.kafka_bootstrap, endpoints.database_url)
            for service in chosen
        ]
        await asyncio.gather(*(runner.run(stop) for runner in runners))

    run(go())


db = typer.Typer(help="The services' PostgreSQL schemas.", no_args_is_help=True)


@db.command()
def migrate(services: list[str] | None = SERVICES_ARGUMENT, everything: bool = ALL_OPTION) -> None:
    """Apply each service's pending SQL migrations (services also do this when they start)."""
    chosen = resolve_services(services or [], everything=everything)

    async def go() -> None:
        endpoints = await connect(settings())
        catalogue = load_catalogue(settings())
        for service in chosen:
            runner = ServiceRunner(service, settings(), catalogue, endpoints.kafka_bootstrap, endpoints.database_url)
            applied = await runner.migrate()
            out.print(f"{service.name}: {', '.join(applied) if applied else 'up to date'} (schema {runner.schema})")

    run(go())
