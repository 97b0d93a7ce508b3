"""`xbus run SERVICE... | --all` and `xbus db migrate`.

A deployment without the registry (``XBUS_REGISTRY=false``) does not run it: ``--all`` leaves it
out, and naming it is refused, since a registry beside the OMS's book would be a second book.
"""

from __future__ import annotations

import asyncio
import signal
from functools import partial

import structlog
import typer

from consumers.runtime.discovery import resolve_services
from consumers.runtime.runner import ServiceRunner
from consumers.runtime.service import Service
from consumers.runtime.watchdog import process_health
from infrastructure.endpoints import connect, load_catalogue
from infrastructure.errors import XbusError
from infrastructure.process_endpoint import HealthReport, ProcessEndpoint
from xbus.cli.common import out, run, settings

log = structlog.get_logger("xbus.run")

SERVICES_ARGUMENT = typer.Argument(None, help="Service names, or module:attribute of a Service.")
ALL_OPTION = typer.Option(False, "--all", help="Every installed service.")


#: The service a deployment without the registry does not run.
REGISTRY = "registry"


def deployed(services: list[str], *, everything: bool) -> list[Service]:
    """The services named (or all, ``everything``) that this deployment runs."""
    chosen = resolve_services(services, everything=everything)
    if settings().registry:
        return chosen
    if not everything and any(service.name == REGISTRY for service in chosen):
        raise XbusError(
            "this deployment runs no registry (XBUS_REGISTRY=false: the OMS keeps the book of record); "
            "leave the registry out, or set XBUS_REGISTRY=true"
        )
    return [service for service in chosen if service.name != REGISTRY]


def run_services(services: list[str] | None = SERVICES_ARGUMENT, everything: bool = ALL_OPTION) -> None:
    """Run services until SIGTERM or Ctrl-C: each finishes its batch, commits and leaves its group."""
    chosen = deployed(services or [], everything=everything)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        endpoints = await connect(settings())
        catalogue = load_catalogue(settings())
        runners = [
            ServiceRunner(service, settings(), catalogue, endpoints.kafka_bootstrap, endpoints.database_url)
            for service in chosen
        ]
        health = partial(_health, runners)
        with ProcessEndpoint(settings().metrics_host, settings().metrics_port, health) as endpoint:
            log.info("serving /metrics, /healthz and /readyz", port=endpoint.port)
            await asyncio.gather(*(runner.run(stop) for runner in runners))

    run(go())


def _health(runners: list[ServiceRunner]) -> HealthReport:
    return process_health([runner.health() for runner in runners])


db = typer.Typer(help="The services' PostgreSQL schemas.", no_args_is_help=True)


@db.command()
def migrate(services: list[str] | None = SERVICES_ARGUMENT, everything: bool = ALL_OPTION) -> None:
    """Apply each service's pending SQL migrations (services also do this when they start)."""
    chosen = deployed(services or [], everything=everything)

    async def go() -> None:
        endpoints = await connect(settings())
        catalogue = load_catalogue(settings())
        for service in chosen:
            runner = ServiceRunner(service, settings(), catalogue, endpoints.kafka_bootstrap, endpoints.database_url)
            applied = await runner.migrate()
            out.print(f"{service.name}: {', '.join(applied) if applied else 'up to date'} (schema {runner.schema})")

    run(go())
