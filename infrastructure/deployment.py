"""The kind of deployment this process belongs to, for the rules that depend on it.

Whether the deployment runs the Foundry Registry (``XBUS_REGISTRY``) decides which service keeps
the book of record of cash and holdings, and so what the OMS does with a deposit and what a flow
waits for. Those rules live in handlers and in the tracker's plan, which are given a unit of work
and no settings; they ask here. The setting is read once per process (``xbus run`` has read and
checked it on start, so a bad value never gets this far); tests that switch it call
:func:`forget` after changing the environment.
"""

from __future__ import annotations

from functools import cache

from infrastructure.settings import load_settings


@cache
def registry_runs() -> bool:
    """True when this deployment runs the registry and it is the book of record."""
    return load_settings().registry


def forget() -> None:
    """Read the setting again on the next call (after a test changed ``XBUS_REGISTRY``)."""
    registry_runs.cache_clear()
