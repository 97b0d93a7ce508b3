"""The registry's handlers of ``xosp.operators``: an operator given the registry is registered
with its Identity function (step ``registry.operator``); a deregistered one, or one registered
again without the registry, is kept, marked."""

from __future__ import annotations

from consumers.registry.store import LedgerUnit
from schemas.operators import OperatorDeregistered, OperatorRegistered
from schemas.registry import (
    RegistryOperatorRegistered,
)
from schemas.types import OperatorSystem

STEP_OPERATOR = "registry.operator"


async def operator_registered(event: OperatorRegistered, unit: LedgerUnit) -> None:
    """Register the operator with the registry's Identity function, when it may use the registry.

    A registration that no longer names the registry is the one in force: an operator registered
    here before is deregistered, kept and marked (no step of ours in that flow: the tracker expects
    none).
    """
    if OperatorSystem.REGISTRY not in event.systems:
        await unit.store.deregister_operator(
            event.operator_id, f"registered again by flow {unit.flow_id} without the registry", unit.cause.time
        )
        return
    await unit.store.register_operator(
        event.operator_id,
        event.login_id,
        [feature.value for feature in event.registry_features],
        unit.flow_id,
        unit.cause.time,
    )
    unit.record(
        RegistryOperatorRegistered(
            flow_id=unit.flow_id, operator_id=event.operator_id, features=event.registry_features
        )
    )


async def operator_deregistered(event: OperatorDeregistered, unit: LedgerUnit) -> None:
    """Keep the operator's row, marked deregistered: who could act, and until when, stays on record.

    An operator the registry does not know was never given the registry: nothing to do, and no
    flow tracks a deregistration.
    """
    await unit.store.deregister_operator(event.operator_id, event.reason, unit.cause.time)
