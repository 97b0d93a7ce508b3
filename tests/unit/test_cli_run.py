"""Which services `xbus run` and `xbus db migrate` start: a deployment without the registry
(``XBUS_REGISTRY=false``) does not run it (plxtra/xosp XOSP-Configure.ps1: ``UsingFoundry = $false``
for the whole deployment, whose tasks then submit deposits "into OMS directly")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consumers.runtime.discovery import find_services
from infrastructure.errors import XbusError
from xbus.cli import common
from xbus.cli.run_cmd import deployed


@pytest.fixture
def registry_setting(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The CLI reads its settings once: read them again for each value the test sets."""
    common.settings.cache_clear()
    yield monkeypatch
    common.settings.cache_clear()


def names(services: list) -> list[str]:
    return sorted(service.name for service in services)


def test_all_runs_every_service_where_the_deployment_runs_the_registry(registry_setting: pytest.MonkeyPatch) -> None:
    assert names(deployed([], everything=True)) == sorted(find_services())
    assert names(deployed(["registry"], everything=False)) == ["registry"]


def test_all_leaves_the_registry_out_of_a_deployment_without_it(registry_setting: pytest.MonkeyPatch) -> None:
    registry_setting.setenv("XBUS_REGISTRY", "false")
    assert names(deployed([], everything=True)) == sorted(set(find_services()) - {"registry"})
    assert names(deployed(["oms", "gateway"], everything=False)) == ["gateway", "oms"]


def test_naming_the_registry_in_a_deployment_without_it_is_refused(registry_setting: pytest.MonkeyPatch) -> None:
    registry_setting.setenv("XBUS_REGISTRY", "false")
    with pytest.raises(XbusError, match=r"runs no registry \(XBUS_REGISTRY=false"):
        deployed(["oms", "registry"], everything=False)
