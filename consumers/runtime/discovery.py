"""Finding services: each package ``consumers/<name>/`` whose ``service.py`` defines ``SERVICE``.

A service can also be named as ``module:attribute``, so a third-party package (or a test) can
run its own service with `xbus run` without being part of this distribution.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

import consumers
from consumers.runtime.service import Service
from infrastructure.errors import XbusError
from infrastructure.settings import Settings


def find_services() -> dict[str, Service]:
    services: dict[str, Service] = {}
    for module in pkgutil.iter_modules(consumers.__path__):
        if not module.ispkg or module.name == "runtime":
            continue
        try:
            service = importlib.import_module(f"consumers.{module.name}.service").SERVICE
        except (ModuleNotFoundError, AttributeError):
            continue
        services[service.name] = service
    return services


def services_by_group(settings: Settings, extra: Iterable[Service] = ()) -> dict[str, Service]:
    """Installed services (and ``extra`` ones) by their physical consumer group id: how lag,
    replay and rebuild tell that a group is an xbus service's, whose topics and schema are known."""
    return {settings.group(service.group_id): service for service in [*find_services().values(), *extra]}


def resolve_services(names: list[str], *, everything: bool) -> list[Service]:
    known = find_services()
    if everything:
        if not known:
            raise XbusError("no services are installed yet (packages under consumers/ with a service.py)")
        return list(known.values())
    if not names:
        raise XbusError("name the services to run, or --all")
    return [_resolve(name, known) for name in names]


def _resolve(name: str, known: dict[str, Service]) -> Service:
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            service = getattr(importlib.import_module(module_name), attribute)
        except (ModuleNotFoundError, AttributeError) as error:
            raise XbusError(f"cannot load service {name}: {error}") from None
        if not isinstance(service, Service):
            raise XbusError(f"{name} is a {type(service).__name__}, not a Service")
        return service
    if name not in known:
        listing = ", ".join(sorted(known)) or "none yet"
        raise XbusError(f"unknown service {name!r}; installed: {listing}; or name one as module:attribute")
    return known[name]
