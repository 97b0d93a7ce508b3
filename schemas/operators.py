"""Events of ``xosp.operators`` (key: operator id): system operators and their manual steps."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from schemas.event import Event
from schemas.types import (
    ExchangeCode,
    LoginId,
    NonEmpty,
    OmsFeature,
    OperatorId,
    OperatorSystem,
    OwnerCode,
    RegistryFeature,
    unique,
)


class OperatorRegistered(Event):
    """An operator to register with each system it may use.

    Prodigy has no operator API: naming it in ``systems`` makes a manual step, never a skipped one.
    """

    event_type = "xosp.operator.registered.v1"
    aggregate_field = "operator_id"

    operator_id: OperatorId
    login_id: LoginId
    systems: tuple[OperatorSystem, ...] = Field(min_length=1)
    oms_features: tuple[OmsFeature, ...] = ()
    registry_features: tuple[RegistryFeature, ...] = ()
    owners: tuple[OwnerCode, ...] = ()
    exchanges: tuple[ExchangeCode, ...] = ()

    _unique_systems = field_validator("systems")(lambda v: unique(v, "system"))

    @model_validator(mode="after")
    def _features_need_their_system(self) -> Self:
        if self.oms_features and OperatorSystem.OMS not in self.systems:
            raise ValueError("oms_features are given but 'oms' is not in systems")
        if self.registry_features and OperatorSystem.REGISTRY not in self.systems:
            raise ValueError("registry_features are given but 'registry' is not in systems")
        return self


class OperatorDeregistered(Event):
    event_type = "xosp.operator.deregistered.v1"
    aggregate_field = "operator_id"

    operator_id: OperatorId
    reason: NonEmpty | None = None


class ManualActionCompleted(Event):
    """Closes a provisioning step that has no API (for example the Prodigy operator)."""

    event_type = "xosp.operator.manual_action_completed.v1"
    aggregate_field = "operator_id"

    operator_id: OperatorId
    flow_id: NonEmpty
    step: NonEmpty
    done_by: NonEmpty
    note: NonEmpty | None = None
